"""`estudely.crawl` yields rows while it runs; `estudely.fetch_metadata` fetches from them."""

from __future__ import annotations

import os

import pandas as pd
import pytest

import estudely
from conftest import TORRENTS, expected


@pytest.fixture(scope="module")
def crawled(net: estudely.Testnet) -> pd.DataFrame:
    with estudely.crawl(
        bootstrap=[net.bootstrap],
        bind=["127.77.200.2:0"],
        max_infohashes=TORRENTS,
        rate=200,
        overall_timeout=90,
    ) as c:
        return c.to_frame()


def test_crawl_yields_rows_as_they_are_found(net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows, running_at_first = [], None
    with estudely.crawl(
        bootstrap=[net.bootstrap],
        bind=["127.77.200.3:0"],
        max_infohashes=0,  # no limit: the crawl runs until stopped
        overall_timeout=0,
        rate=200,
    ) as c:
        for row in c:
            if running_at_first is None:
                running_at_first = c.running
            rows.append(row)
            if len({r.infohash for r in rows}) == TORRENTS:
                c.stop()
        assert not c.running
    assert running_at_first is True, "the first row came while the crawl ran"
    assert {r.infohash for r in rows} == set(expected(net.manifest))
    assert all(isinstance(r, estudely.CrawlRow) for r in rows)
    assert all(isinstance(r.peer_port, int) for r in rows)
    assert not os.path.exists("peers.csv"), "no peers file unless asked for"


def test_crawl_frame_and_peers_file(net, crawled, tmp_path):
    df = crawled
    assert list(df.columns) == ["infohash", "peer_ip", "peer_port", "source"]
    assert df["peer_port"].dtype == "int64"
    want = expected(net.manifest)
    got = {(r.infohash, f"{r.peer_ip}:{r.peer_port}") for r in df.itertuples()}
    assert got == {(ih, w["peer"]) for ih, w in want.items()}
    assert df["source"].str.startswith("127.77.10.").all(), df["source"]

    peers_csv = tmp_path / "peers.csv"
    with estudely.crawl(
        bootstrap=[net.bootstrap],
        bind=["127.77.200.4:0"],
        max_infohashes=2,
        rate=200,
        overall_timeout=60,
        peers_file=peers_csv,
    ) as c:
        rows = c.to_frame()
    lines = peers_csv.read_text().splitlines()
    assert lines[0] == "infohash,peer_ip,peer_port"
    assert len(lines) == 1 + len(rows) and len(rows) >= 2


def test_fetch_metadata_from_crawl_rows(net, crawled, tmp_path):
    want = expected(net.manifest)
    df = estudely.fetch_metadata(crawled, allow_private=True, overall_timeout=60)
    assert list(df.columns[:5]) == [
        "infohash",
        "name",
        "file_count",
        "total_bytes",
        "piece_length",
    ]
    assert sorted(df["infohash"]) == sorted(want)
    for row in df.itertuples():
        w = want[row.infohash]
        assert row.name_bytes == w["name_bytes"]
        assert (row.file_count, row.total_bytes) == (w["file_count"], w["total_bytes"])
        assert row.peer == w["peer"]
    assert df["metadata_size"].dtype == "int64"

    # The same from a peers CSV file, and from plain tuples.
    path = tmp_path / "peers.csv"
    crawled[["infohash", "peer_ip", "peer_port"]].to_csv(path, index=False)
    from_file = estudely.fetch_metadata(path, allow_private=True, overall_timeout=60)
    assert sorted(from_file["infohash"]) == sorted(want)
    tuples = [(r.infohash, r.peer_ip, r.peer_port) for r in crawled.itertuples()][:1]
    one = estudely.fetch_metadata(tuples, allow_private=True, overall_timeout=60)
    assert list(one["infohash"]) == [tuples[0][0]]


def test_fetch_metadata_refuses_loopback_peers_by_default(crawled):
    """As on the command line: private and loopback peers need allow_private."""
    df = estudely.fetch_metadata(crawled.head(2), overall_timeout=30)
    assert len(df) == 0
    assert list(df.columns[:5]) == [
        "infohash",
        "name",
        "file_count",
        "total_bytes",
        "piece_length",
    ]
