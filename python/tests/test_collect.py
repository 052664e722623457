"""`estudely.collect` against the shared loopback testnet: every torrent of the manifest,
with its metadata, in the CLI's columns and proper dtypes; the same rows as the CLI's CSV."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

import estudely
from conftest import TORRENTS, expected, run_cli

CSV_COLUMNS = [
    "infohash",
    "name",
    "file_count",
    "total_bytes",
    "piece_length",
    "peer_ip",
    "peer_port",
    "metadata_ok",
]


def collect_args(net: estudely.Testnet, bind: str) -> dict:
    return dict(
        bootstrap=[net.bootstrap],
        bind=[bind],
        max_infohashes=TORRENTS,
        rate=200,
        overall_timeout=90,
    )


@pytest.fixture(scope="module")
def collected(net: estudely.Testnet) -> pd.DataFrame:
    return estudely.collect(**collect_args(net, "127.77.200.1:0"))


def test_collect_finds_every_torrent_with_its_metadata(net, collected):
    df = collected
    assert list(df.columns[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    want = expected(net.manifest)
    assert len(want) == TORRENTS
    assert sorted(df["infohash"]) == sorted(want), df
    assert df["metadata_ok"].all(), df
    for row in df.itertuples():
        w = want[row.infohash]
        assert row.name_bytes == w["name_bytes"]
        assert bytes.fromhex(row.name_hex) == w["name_bytes"]
        assert (row.file_count, row.total_bytes, row.piece_length) == (
            w["file_count"],
            w["total_bytes"],
            w["piece_length"],
        )
        assert f"{row.peer_ip}:{row.peer_port}" == w["peer"]
        assert row.version == "v1"
    hostile = [n for n in df["name_bytes"] if n.startswith(b"estudely-hostile-")]
    assert len(hostile) == 2, "t = 5 and 10 have hostile names, kept byte for byte"
    assert all(b"\n" in n or b"\\" in n or b"," in n for n in hostile)


def test_collect_dtypes(collected):
    dtypes = collected.dtypes
    for column in ("file_count", "total_bytes", "piece_length"):
        assert dtypes[column] == "int64", column
    assert dtypes["metadata_ok"] == bool
    assert dtypes["peer_port"] == "Int64"
    assert dtypes["seeds_estimate"] == "Int64"
    for column in ("infohash", "name", "peer_ip", "name_hex"):
        assert pd.api.types.is_string_dtype(dtypes[column]), column
        assert all(isinstance(v, str) for v in collected[column]), column
    assert all(isinstance(v, bytes) for v in collected["name_bytes"])


def test_collect_returns_the_rows_of_the_cli_csv(net, collected, estudely_bin):
    """The same testnet, collected by the binary: the same rows, field by field (the CSV's
    escaped names read back as bytes)."""
    args = collect_args(net, "127.77.200.11:0")
    out = run_cli(
        estudely_bin,
        "collect",
        "--bootstrap",
        net.bootstrap,
        "--bind",
        args["bind"][0],
        "--max-infohashes",
        str(args["max_infohashes"]),
        "--rate",
        "200",
        "--overall-timeout",
        "90",
    )
    assert out.returncode == 0, out.stderr
    cli = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(cli[0]) == CSV_COLUMNS

    def key(infohash, name_bytes, files, total, piece, ip, port, ok):
        return (infohash, name_bytes, int(files), int(total), int(piece), ip, int(port), ok)

    from_cli = sorted(
        key(
            r["infohash"],
            unescape(r["name"]),
            r["file_count"],
            r["total_bytes"],
            r["piece_length"],
            r["peer_ip"],
            r["peer_port"],
            r["metadata_ok"] == "True",
        )
        for r in cli
    )
    from_py = sorted(
        key(
            r.infohash,
            r.name_bytes,
            r.file_count,
            r.total_bytes,
            r.piece_length,
            r.peer_ip,
            r.peer_port,
            bool(r.metadata_ok),
        )
        for r in collected.itertuples()
    )
    assert from_py == from_cli


def unescape(name: str) -> bytes:
    """The CSV's name escaping undone: `\\xHH` a byte, `\\uHHHH` a character, `\\\\` a
    backslash, anything else UTF-8 (see the README)."""
    out = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and name[i + 1] == "x":
            out.append(int(name[i + 2 : i + 4], 16))
            i += 4
        elif c == "\\" and name[i + 1] == "u":
            out += chr(int(name[i + 2 : i + 6], 16)).encode()
            i += 6
        elif c == "\\":
            out += b"\\"
            i += 2
        else:
            out += c.encode()
            i += 1
    return bytes(out)


def test_a_torrent_without_metadata_or_peers_keeps_its_columns():
    """A crawl of a testnet whose only torrents serve no metadata: rows with
    `metadata_ok` False, empty names, zeros, and the dtypes unchanged."""
    with estudely.testnet(
        nodes=8, torrents=0, no_metadata=2, base_ip="127.77.14"
    ) as small:
        df = estudely.collect(
            bootstrap=[small.bootstrap],
            bind=["127.77.200.14:0"],
            max_infohashes=2,
            rate=200,
            overall_timeout=60,
        )
    assert len(set(df["infohash"])) == 2, df
    assert not df["metadata_ok"].any()
    assert (df["name"] == "").all() and (df["file_count"] == 0).all()
    assert df["file_count"].dtype == "int64" and df["peer_port"].dtype == "Int64"
