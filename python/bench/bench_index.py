"""Time `estudely.Index(db).torrents()` into pandas, and measure its memory.

    python3 python/bench/bench_index.py --db sqlite:/tmp/index.sqlite [--runs 3]
        [--chunk-size 65536] [--method torrents|to_arrow] [--parts N]

Each run is a fresh Python process (so that one run's memory does not hide the next's):
it imports estudely and pandas, opens the index, resets the kernel's peak-RSS mark
(/proc/self/clear_refs), then reads every torrent. It reports the rows, the seconds of the
call (and the CPU seconds of the process, every thread, which a busy machine inflates less), the peak RSS above what the process held before the call (VmHWM - VmRSS), and the
DataFrame's own size (``memory_usage(deep=True)``). One more run under ``tracemalloc``
gives the peak of Python's allocations (numpy and pandas report theirs to it); it is not
timed, tracing slows it down. The medians of the timed runs are printed last.

Build a big index first with our own code, e.g. 1 M synthetic torrents:
    cargo bench -p estudely --bench store -- --db /tmp/index.sqlite --torrents 1000000 --searches 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def child(db: str, chunk_size: int, method: str, trace: bool, parts: int) -> dict:
    import estudely
    import estudely.index

    if parts:
        # Threads reading the index at once (default: one per core, at most 4).
        estudely.index._PARTS = parts

    index = estudely.Index(db)
    if trace:
        import tracemalloc

        tracemalloc.start()
    # Peak RSS from here on (Linux: writing 5 resets VmHWM to the current RSS).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kb("VmRSS:")
    started, cpu = time.perf_counter(), time.process_time()
    result = getattr(index, method)(chunk_size=chunk_size)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = status_kb("VmHWM:")
    out = {
        "rows": len(result) if method == "torrents" else result.num_rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_delta_mb": (peak - before) / 1024,
        "result_mb": (
            result.memory_usage(deep=True).sum() if method == "torrents" else result.nbytes
        )
        / 2**20,
    }
    if trace:
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="the index, as --db takes it")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--chunk-size", type=int, default=65_536)
    p.add_argument("--method", choices=["torrents", "to_arrow"], default="torrents")
    p.add_argument("--parts", type=int, default=0, help="threads reading the index (0: the default)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.db, a.chunk_size, a.method, a.trace, a.parts)))
        return
    runs = []
    for i in range(a.runs + 1):
        trace = i == a.runs
        cmd = [sys.executable, __file__, "--child", "--db", a.db, "--chunk-size",
               str(a.chunk_size), "--method", a.method, "--parts", str(a.parts)]
        cmd += ["--trace"] if trace else []
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(("traced " if trace else f"run {i + 1} ") + json.dumps(r), flush=True)
        if not trace:
            runs.append(r)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"Index.{a.method}(): {med['rows']:,.0f} rows in {med['seconds']:.2f} s (median of "
        f"{a.runs}; {med['cpu_seconds']:.2f} s of CPU, all threads); peak RSS +{med['peak_rss_delta_mb']:.0f} MB; result "
        f"{med['result_mb']:.0f} MB; tracemalloc peak {r['tracemalloc_peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
