"""`estudely.run`: the index `estudely run` builds, from Python. What `Index` reads back
from it is what the CLI's `export --format jsonl` writes for it; Ctrl-C stops it as it
stops the CLI, keeping every committed row."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

import estudely
from conftest import estudely_threads, run_cli
from test_index import export_rows, plain

TORRENTS = 9

SUMMARY = {
    "infohashes",
    "stored",
    "known",
    "filtered",
    "blocklisted",
    "fetch_failed",
    "no_peers",
    "dht_queries",
    "transactions",
    "interrupted",
    "seconds",
}


@pytest.fixture(scope="module")
def run_net():
    """A testnet of its own (127.77.20.x, seeders 127.77.21.x): its torrents are stored
    once each, whichever test runs first."""
    with estudely.testnet(nodes=16, torrents=TORRENTS, base_ip="127.77.20") as net:
        yield net


def ours() -> list[str]:
    return [t for t in estudely_threads() if not t.startswith("estudely-testne")]


def test_run_builds_the_index_export_writes(run_net, estudely_bin, tmp_path, capfd):
    db = f"sqlite:{tmp_path / 'index.sqlite'}"
    summary = estudely.run(
        db=db, bootstrap=[run_net.bootstrap], bind=["127.77.200.20:0"], rate=200,
        overall_timeout=20,
    )
    assert set(summary) == SUMMARY
    assert summary["stored"] == TORRENTS and not summary["interrupted"], summary
    assert summary["infohashes"] >= TORRENTS and summary["transactions"] >= 1
    assert summary["dht_queries"] > 0 and summary["seconds"] > 0
    # The figures are the summary line's, which still goes to stderr as on the CLI.
    line = [l for l in capfd.readouterr().err.splitlines() if l.startswith("run: ") and " stored" in l]
    assert line[-1].startswith(
        f"run: {summary['infohashes']} infohashes, {summary['stored']} stored, "
        f"{summary['known']} known or fetched elsewhere, {summary['filtered']} filtered"
    ), line
    assert ours() == [], "the run's threads (and its store thread) were joined"

    want = export_rows(estudely_bin, db)
    assert len(want) == TORRENTS
    with estudely.Index(db) as index:
        assert plain(index.torrents()) == want
        stats = index.stats().set_index(["group", "key"])["count"]
    assert stats["totals", "torrents"] == TORRENTS

    # Again on the same index: nothing is fetched or stored twice.
    again = estudely.run(
        db=db, bootstrap=[run_net.bootstrap], bind=["127.77.200.21:0"], rate=200,
        overall_timeout=5,
    )
    assert again["stored"] == 0, again
    # The same torrents (seen again: their sightings and estimates are fresher).
    assert [r["infohash"] for r in export_rows(estudely_bin, db)] == [
        w["infohash"] for w in want
    ]


def test_run_arguments_are_the_cli_flags(tmp_path, estudely_bin):
    with pytest.raises(ValueError, match="invalid value 'lots' for '--min-size <SIZE>'") as e:
        estudely.run(db=str(tmp_path / "x.sqlite"), min_size="lots")
    cli = run_cli(estudely_bin, "run", "--db", str(tmp_path / "x.sqlite"), "--min-size", "lots")
    assert cli.returncode == 2
    assert cli.stderr.splitlines()[0] == f"error: {e.value}", "the CLI's one line"
    with pytest.raises(ValueError, match="bad address `127.77.1.1`"):
        estudely.run(db=str(tmp_path / "x.sqlite"), bootstrap=["127.77.1.1"])
    with pytest.raises(TypeError, match="run"):
        estudely.run(db=str(tmp_path / "x.sqlite"), max_infohashes=3)
    assert not (tmp_path / "x.sqlite").exists(), "refused before the index was created"


def test_ctrl_c_stops_a_run_and_keeps_what_it_committed(run_net, estudely_bin, tmp_path, capfd):
    path = tmp_path / "index.sqlite"
    db = f"sqlite:{path}"
    done, seen = threading.Event(), []

    def interrupt_once_something_is_stored() -> None:
        # Polls the index as `run` writes it (at most 2,400 times), then sends SIGINT to
        # this process as Ctrl-C does. `run`'s own limit (120 s) ends it otherwise, and
        # the test then fails: no KeyboardInterrupt.
        for _ in range(2_400):
            if done.wait(0.05):
                return
            try:
                with estudely.Index(db) as index:
                    stats = index.stats()
            except (ValueError, estudely.EstudelyError):
                continue  # not created yet
            count = int(stats.set_index(["group", "key"])["count"]["totals", "torrents"])
            if count > 0:
                seen.append(count)
                os.kill(os.getpid(), signal.SIGINT)
                return

    poller = threading.Thread(target=interrupt_once_something_is_stored)
    poller.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            estudely.run(
                db=db, bootstrap=[run_net.bootstrap], bind=["127.77.200.22:0"], rate=50,
                overall_timeout=120,
            )
    finally:
        done.set()
        poller.join()
    err = capfd.readouterr().err
    assert "run: interrupted; committed what is known" in err, err
    assert ours() == [], "the run's threads were joined"
    # Stopped, not timed out: the summary line's seconds are far below its 120 s.
    summary = [l for l in err.splitlines() if l.startswith("run: ") and " stored" in l]
    seconds = float(re.search(r"; ([0-9.]+) s(;|$)", summary[-1]).group(1))
    assert seconds < 120, summary

    # Every row committed before the stop is there, and is what export writes.
    rows = export_rows(estudely_bin, db)
    assert len(rows) >= seen[0] >= 1
    with estudely.Index(db) as index:
        assert plain(index.torrents()) == rows
    names = {t["infohash"] for t in run_net.manifest["torrents"]}
    assert {r["infohash"] for r in rows} <= names
