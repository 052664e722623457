"""Fixtures of the Python package's tests: a loopback testnet run in-process by the
package itself, and the `estudely` binary (for comparing with the command line).

Addresses: every test stays on 127.77.0.0/16, which the Rust tests do not use: testnets on
127.77.N (their seeders on 127.77.N+1), crawlers bound to 127.77.200.x. Nothing is sent
anywhere else. Every wait is bounded by the commands' own timeouts; pytest's own limit
(none is set) is not relied on.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
from typing import Any, Iterator

import pytest

import estudely

REPO = pathlib.Path(__file__).resolve().parents[2]

# Ctrl-C as in a terminal, whoever started the tests: a shell that starts a job in the
# background without job control (`cmd &` in a script, nohup) makes it ignore SIGINT, and
# Python then keeps it ignored, so the Ctrl-C tests would see no KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

#: Nodes and torrents of the shared testnet: t = 5 and t = 10 have hostile names.
NODES, TORRENTS = 20, 12


@pytest.fixture(scope="session")
def estudely_bin() -> str:
    """The `estudely` binary: $ESTUDELY_BIN, else target/debug/estudely (scripts/test has
    built it with the Rust tests), else built now."""
    path = os.environ.get("ESTUDELY_BIN") or str(REPO / "target" / "debug" / "estudely")
    if not os.path.exists(path):
        subprocess.run(
            ["cargo", "build", "-p", "estudely", "--bin", "estudely"], cwd=REPO, check=True
        )
    return path


@pytest.fixture(scope="session")
def net() -> Iterator[estudely.Testnet]:
    """A testnet of 20 nodes and 12 seeded torrents on 127.77.10.x (seeders 127.77.11.x),
    shared by the tests that only crawl it."""
    with estudely.testnet(
        nodes=NODES, torrents=TORRENTS, base_ip="127.77.10", interval=60
    ) as n:
        yield n


def expected(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's torrents by infohash: name bytes, sizes and peer, as a collect row
    has them."""
    return {
        t["infohash"]: {
            "name_bytes": bytes.fromhex(t["name_hex"]),
            "file_count": t["file_count"],
            "total_bytes": t["total_bytes"],
            "piece_length": t["piece_length"],
            "peer": t["peers"][0],
        }
        for t in manifest["torrents"]
    }


def run_cli(bin: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the binary to completion (its own --overall-timeout ends it; `timeout` only
    guards against a hang)."""
    return subprocess.run(
        [bin, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def estudely_threads() -> list[str]:
    """Names of this process's threads started by the package (`estudely-collect`, ...;
    Linux shows 15 characters)."""
    names = []
    for task in pathlib.Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("estudely-"):
            names.append(name)
    return names
