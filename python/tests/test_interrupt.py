"""Ctrl-C: SIGINT sent to this process while a command runs raises KeyboardInterrupt in
the waiting thread, after the command was told to stop (it says so) and its thread was
joined; the process works on afterwards. Each command has a limit of its own far beyond the
signal, so that a broken Ctrl-C fails the test instead of hanging it."""

from __future__ import annotations

import os
import re
import signal
import threading

import pytest

import estudely
from estudely import _native
from conftest import estudely_threads


def interrupt_after(seconds: float) -> threading.Timer:
    """SIGINT to this very process after `seconds`, as Ctrl-C in a terminal sends it."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def ours() -> list[str]:
    return [t for t in estudely_threads() if not t.startswith("estudely-testne")]


def test_ctrl_c_stops_a_long_collect(net, capfd):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    timer = interrupt_after(2.0)
    with pytest.raises(KeyboardInterrupt):
        # Nothing answers at its bootstrap address: no row ever comes back to Python, so
        # only the native wait itself can notice the signal. 120 s to its end otherwise.
        estudely.collect(
            bootstrap=["127.77.51.1:6881"],
            bind=["127.77.200.50:0"],
            max_infohashes=0,
            overall_timeout=120,
            rate=50,
        )
    timer.join()
    err = capfd.readouterr().err
    assert "collect: interrupted; writing what is known" in err, err
    assert ours() == [], "the collect thread was joined"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "ours stays"

    # The process goes on working.
    df = estudely.collect(
        bootstrap=[net.bootstrap], bind=["127.77.200.51:0"], max_infohashes=2,
        rate=200, overall_timeout=60,
    )
    assert df["metadata_ok"].all() and len(set(df["infohash"])) == 2


def test_ctrl_c_while_iterating_a_crawl(net, capfd):
    timer = interrupt_after(1.5)
    with pytest.raises(KeyboardInterrupt):
        with estudely.crawl(
            bootstrap=[net.bootstrap], bind=["127.77.200.52:0"], max_infohashes=0,
            overall_timeout=120, rate=50,
        ) as c:
            for _ in c:
                pass
    timer.join()
    assert ours() == [] and not c.running
    # Its summary: it ended (stopped) long before its own 120 s.
    summary = [l for l in capfd.readouterr().err.splitlines() if l.startswith("crawl: ")]
    seconds = float(re.search(r", ([0-9.]+) s(;|$)", summary[-1]).group(1))
    assert seconds < 120, summary


def test_ctrl_c_stops_a_query_waiting_for_its_reply():
    # A socket that never answers, and a 60 s timeout: only a stop ends the wait sooner.
    import socket
    import time

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.77.52.1", 0))
    addr = "%s:%d" % silent.getsockname()
    timer = interrupt_after(1.0)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        estudely.query.ping(addr, timeout=60, bind="127.77.200.53:0")
    timer.join()
    silent.close()
    assert time.monotonic() - started < 30, "stopped long before the timeout"
    assert ours() == [], "the query thread was joined"


def test_ctrl_c_stops_a_simulation():
    # A virtual hour, a row every virtual minute: 61 rows and over a minute of wall time
    # to the end, had Ctrl-C not stopped it at its next row.
    task = _native.simulate(nodes=1_000_000, rate=2_000, hours=1, every=1)
    rows = []
    timer = interrupt_after(1.0)
    with pytest.raises(KeyboardInterrupt):
        for line in task:
            rows.append(line)
    timer.join()
    assert not task.running and ours() == []
    assert len([r for r in rows if r[:1].isdigit()]) < 61, "stopped before the end"
    task.close()


# A big simulation with a row a virtual day: its first row is hours of wall time away.
BIG = dict(nodes=1_000_000, rate=2_000, hours=720, every=1_440)


def test_ctrl_c_stops_a_big_simulation_between_its_rows():
    task = _native.simulate(**BIG)
    lines = []
    timer = interrupt_after(1.0)
    with pytest.raises(KeyboardInterrupt):
        for line in task:
            lines.append(line)
    timer.join()
    assert not task.running and ours() == [], "the simulation's thread was joined"
    assert [l for l in lines if l[:1].isdigit()] == [], "not one of its 30 rows was due"
    task.close()


def test_a_stopped_simulation_ends_within_a_step_of_its_virtual_clock():
    # Told to stop (as Ctrl-C does) right after it wrote its header: it ends where its
    # virtual clock stands then, long before its first row (24 virtual hours), and says
    # so; it did not run on to that row.
    task = _native.simulate(**BIG)
    assert next(task).startswith("# simulate: ")
    assert next(task).startswith("hours,")
    task.stop()
    rest = list(task)
    assert not task.running and ours() == []
    assert rest[-1].startswith("# stopped at ") and rest[-1].endswith(" of 720 virtual hours")
    rows = [l for l in rest if l[:1].isdigit()]
    assert len(rows) == 1, rest
    assert float(rows[0].split(",")[0]) < 24, "stopped before its first row was due"
    task.close()
