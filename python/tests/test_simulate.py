"""`estudely.simulate`: the coverage table over virtual time, the CLI's figures."""

from __future__ import annotations

import csv
import io

import estudely
from conftest import run_cli

SMALL = dict(nodes=5000, rate=100, hours=0.5, every=5, seed=3)


def test_simulate_returns_growing_coverage(estudely_bin):
    df = estudely.simulate(**SMALL)
    assert list(df.columns) == [
        "hours",
        "queries",
        "samples_sent",
        "samples_answered",
        "found",
        "coverage_pct",
        "nodes_known",
        "nodes_rested",
        "rss_mb",
        "wall_s",
    ]
    assert len(df) == 6, df
    assert df["hours"].iloc[-1] == 0.5
    assert df["found"].is_monotonic_increasing and df["found"].iloc[-1] > df["found"].iloc[0]
    assert df["coverage_pct"].iloc[-1] > 0
    assert df["queries"].dtype == "int64" and df["coverage_pct"].dtype == "float64"
    assert any(s.startswith("found ") for s in df.attrs["summary"]), df.attrs

    # The command line's table, for the same flags: the same figures (memory and wall
    # time aside).
    out = run_cli(
        estudely_bin, "simulate", "--format", "csv",
        *[f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()],
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(
        "\n".join(l for l in out.stdout.splitlines() if not l.startswith("#"))
    )))
    assert [int(r["found"]) for r in rows] == list(df["found"])
    assert [int(r["queries"]) for r in rows] == list(df["queries"])
