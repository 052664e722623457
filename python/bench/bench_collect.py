"""`estudely.collect` from Python against the CLI's `estudely collect`, on one testnet.

    python3 python/bench/bench_collect.py --bin target/release/estudely [--runs 5]
        [--nodes 64] [--torrents 200] [--rate 1000]

One `estudely testnet` (the binary, a process of its own, seed fixed) serves both. Then
`--runs` pairs, alternating which goes first: the CLI (`collect --format csv`, wall time
from start to exit, process start-up included) and the package (`estudely.collect(...)`
with the same flags, in this process: the call, DataFrame included). Their CPU seconds
too (the CLI's from the kernel's account of waited-for children, the package's from this
process's, which holds nothing else while it runs: the testnet is a process of its own). Each run binds a
loopback address of its own (127.0.192.x), so that the testnet's per-address budgets and
BEP 51 intervals never carry over from one run to the next. Prints each run, then the
medians and their ratio. Install the package built in release first (`pip install
./python`) and build the CLI in release (`cargo build --release -p estudely`).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import time

import estudely


def cpu_seconds(who: str) -> float:
    """CPU seconds used so far: by this process (the package's threads), or by the
    processes it waited for (the CLI)."""
    who_usage = resource.RUSAGE_SELF if who == "python" else resource.RUSAGE_CHILDREN
    usage = resource.getrusage(who_usage)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", required=True, help="the estudely binary (release)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--nodes", type=int, default=64)
    p.add_argument("--torrents", type=int, default=200)
    p.add_argument("--rate", type=int, default=1000)
    a = p.parse_args()

    testnet = subprocess.Popen(
        [a.bin, "testnet", "--nodes", str(a.nodes), "--torrents", str(a.torrents),
         "--base-ip", "127.0.190", "--seed", "1", "--manifest", "/tmp/bench-collect-testnet.json"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert testnet.stdout is not None
        bootstrap = testnet.stdout.readline().split()[1]
        flags = dict(
            bootstrap=[bootstrap], max_infohashes=a.torrents, rate=a.rate, overall_timeout=120
        )
        times: dict[str, list[float]] = {"cli": [], "python": []}
        cpus: dict[str, list[float]] = {"cli": [], "python": []}
        for i in range(a.runs):
            order = ["cli", "python"] if i % 2 == 0 else ["python", "cli"]
            for j, who in enumerate(order):
                bind = f"127.0.192.{2 * i + j + 1}:0"
                started = time.perf_counter()
                cpu = cpu_seconds(who)
                if who == "cli":
                    out = subprocess.run(
                        [a.bin, "collect", "--bootstrap", bootstrap, "--bind", bind,
                         "--max-infohashes", str(a.torrents), "--rate", str(a.rate),
                         "--overall-timeout", "120"],
                        capture_output=True, text=True, check=True,
                    )
                    got = len({line.split(",")[0] for line in out.stdout.splitlines()[1:]})
                else:
                    df = estudely.collect(bind=[bind], **flags)
                    got = df["infohash"].nunique()
                seconds = time.perf_counter() - started
                cpu = cpu_seconds(who) - cpu
                times[who].append(seconds)
                cpus[who].append(cpu)
                print(
                    f"run {i + 1} {who:6} {seconds:6.2f} s ({cpu:5.2f} s of CPU), "
                    f"{got} infohashes",
                    flush=True,
                )
        cli, py = statistics.median(times["cli"]), statistics.median(times["python"])
        cli_cpu, py_cpu = statistics.median(cpus["cli"]), statistics.median(cpus["python"])
        print(
            f"median of {a.runs}: CLI {cli:.2f} s, Python {py:.2f} s, "
            f"Python/CLI {py / cli:.3f}; CPU: CLI {cli_cpu:.2f} s, Python {py_cpu:.2f} s"
        )
    finally:
        testnet.terminate()
        testnet.wait()


if __name__ == "__main__":
    main()
