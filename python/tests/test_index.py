"""`estudely.Index` over an index built by `estudely run` against a loopback testnet, in
SQLite and in PostgreSQL: what it returns is what `export`, `search` and `stats` write,
read in chunks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pandas as pd
import pytest

import estudely
from conftest import REPO, run_cli

TORRENTS = 9


@pytest.fixture(autouse=True)
def full_check(monkeypatch):
    """Every value of every chunk checked (offsets in order, text valid UTF-8), which the
    package leaves to the native side's construction."""
    monkeypatch.setattr(estudely._arrow, "FULL_CHECK", True)


@pytest.fixture(scope="module")
def index_net():
    with estudely.testnet(nodes=16, torrents=TORRENTS, base_ip="127.77.40") as net:
        yield net


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    """A throwaway PostgreSQL server (scripts/pg-test-server, as the Rust tests use; unix
    socket only), stopped at the end; its libpq connection string."""
    directory = tempfile.mkdtemp(prefix="estudely-pg", dir="/tmp")
    script = REPO / "scripts" / "pg-test-server"
    out = subprocess.run(
        ["bash", str(script), "start", directory, str(os.getpid())],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"cannot start PostgreSQL (scripts/test installs it): {out.stderr}"
    yield out.stdout.strip()
    subprocess.run(["bash", str(script), "stop", directory], capture_output=True, timeout=120)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def index_path(request, estudely_bin, index_net, tmp_path_factory):
    """An index built by `estudely run` for 20 s against the module's testnet (127.77.40.x):
    an SQLite file, or a PostgreSQL database (`postgres:host=...`)."""
    if request.param == "sqlite":
        db, bind = str(tmp_path_factory.mktemp("index") / "index.sqlite"), "127.77.200.40:0"
    else:
        db, bind = "postgres:" + request.getfixturevalue("pg_server"), "127.77.200.41:0"
    out = run_cli(
        estudely_bin, "run", "--db", db, "--bootstrap", index_net.bootstrap,
        "--bind", bind, "--rate", "200", "--overall-timeout", "20",
    )
    assert out.returncode == 0, out.stderr
    return db


def export_rows(bin: str, path, *extra: str) -> list[dict]:
    out = run_cli(bin, "export", "--db", str(path), "--format", "jsonl", *extra)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def plain(df: pd.DataFrame) -> list[dict]:
    """Rows as the JSON objects they came from: NA as None, numpy scalars as Python's, and
    the fields an Arrow column has as None where the JSON view leaves them out (`path_hex`
    of an exact path, the release fields a name does not have) left out."""
    rows = json.loads(df.drop(columns=["name_bytes"]).to_json(orient="records"))
    for row in rows:
        for f in row.get("files") or []:
            if f.get("path_hex", 0) is None:
                del f["path_hex"]
        if isinstance(row.get("release"), dict):
            row["release"] = {k: v for k, v in row["release"].items() if v is not None}
    return rows


def test_torrents_are_what_export_writes(index_path, estudely_bin):
    want = export_rows(estudely_bin, index_path)
    assert len(want) == TORRENTS, "run stored every torrent of the testnet"
    url = index_path if index_path.startswith("postgres:") else f"sqlite:{index_path}"
    with estudely.Index(url) as index:
        df = index.torrents()
    # Export's fields, in its order (a field added to the JSON view later comes last here).
    assert set(want[0]) <= set(df.columns)
    assert [c for c in df.columns if c in want[0]] == list(want[0])
    assert plain(df) == want
    assert [bytes.fromhex(w["name_hex"]) for w in want] == list(df["name_bytes"])
    assert df["discovered"].dtype == "int64" and df["private"].dtype == bool
    assert df["seeds_estimate"].dtype == "Int64"
    assert all(isinstance(f, list) for f in df["files"])


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_torrents_read_in_parts_are_in_order(index_path, estudely_bin, monkeypatch, parts):
    """`torrents()` read by several threads, each a range of the index (SQLite; PostgreSQL
    does not split): the chunks of the ranges come interleaved, and the frame holds the
    rows `export` writes, in its order, whatever the chunk size."""
    want = export_rows(estudely_bin, index_path)
    monkeypatch.setattr(estudely.index, "_PARTS", parts)
    with estudely.Index(index_path) as index:
        for chunk_size in (1, 2, 4, 100):
            df = index.torrents(chunk_size=chunk_size)
            assert plain(df) == want, chunk_size
            assert [bytes.fromhex(w["name_hex"]) for w in want] == list(df["name_bytes"])
            assert index.to_arrow(chunk_size=chunk_size).equals(
                index.to_arrow(chunk_size=TORRENTS)
            )
        task = index._index.torrent_columns(chunk_size=1, parts=parts)
        chunks = [(c["part"], c["rows"]) for c in task]
    split = 1 if index_path.startswith("postgres:") else parts
    assert sorted({p for p, _ in chunks}) == list(range(split))
    assert sum(r for _, r in chunks) == TORRENTS


def test_without_pyarrow_the_same_rows(index_path, monkeypatch):
    """The rows built as Python objects (no pyarrow) are the rows built in Arrow."""
    with estudely.Index(index_path) as index:
        arrow = index.torrents()
        monkeypatch.setattr(estudely.index, "_pyarrow", lambda: None)
        objects = index.torrents()
        chunks = [len(c) for c in index.iter_torrents(chunk_size=4)]
    assert plain(objects) == plain(arrow)
    assert list(objects.columns) == list(arrow.columns)
    assert [str(t) for t in objects.dtypes[:17]] == [str(t) for t in arrow.dtypes[:17]]
    assert list(objects["name_bytes"]) == list(arrow["name_bytes"])
    assert chunks == [4, 4, 1]
    assert isinstance(arrow["files"].dtype, pd.ArrowDtype)
    assert objects["files"].dtype == object


def test_chunks_since_and_arrow(index_path, estudely_bin):
    index = estudely.Index(index_path)
    chunks = list(index.iter_torrents(chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 1]
    whole = index.torrents()
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    latest = int(whole["discovered"].max())
    since = index.torrents(since=latest)
    assert plain(since) == export_rows(estudely_bin, index_path, "--since", str(latest))
    assert len(index.torrents(since="2999-01-01")) == 0
    with pytest.raises(ValueError, match="not unix seconds, a YYYY-MM-DD date"):
        index.torrents(since="yesterday")
    pa = pytest.importorskip("pyarrow")
    table = index.to_arrow(chunk_size=4)
    assert isinstance(table, pa.Table) and table.num_rows == TORRENTS
    assert table.column("infohash").to_pylist() == list(whole["infohash"])


def test_search_files_and_stats(index_path, estudely_bin):
    index = estudely.Index(index_path)
    hits = index.search("estudely", limit=50)
    cli = run_cli(estudely_bin, "search", "--db", str(index_path), "estudely", "--limit", "50",
                  "--format", "jsonl")
    assert cli.returncode == 0, cli.stderr
    assert plain(hits) == [json.loads(line) for line in cli.stdout.splitlines()]
    assert len(hits) == TORRENTS
    assert len(index.search("estudely", limit=2, offset=1, sort="size")) == 2
    with pytest.raises(ValueError, match="invalid value 'best'"):
        index.search("x", sort="best")
    # The query language, read as the CLI reads it.
    q = "estudely -sample files:>1"
    hits = index.search(q, limit=50)
    cli = run_cli(estudely_bin, "search", "--db", str(index_path), q, "--limit", "50",
                  "--format", "jsonl")
    assert cli.returncode == 0, cli.stderr
    assert plain(hits) == [json.loads(line) for line in cli.stdout.splitlines()]
    assert len(hits) > 0
    assert not any("sample" in n for n in hits["name"]) and (hits["file_count"] > 1).all()
    assert len(index.search("estudely", limit=50, category="movie")) == 0
    with pytest.raises(ValueError, match="size: expects"):
        index.search("estudely size:abc")

    torrents = index.torrents()
    multi = torrents[torrents["file_count"] > 1].iloc[0]
    files = index.files(multi["infohash"])
    assert list(files.columns) == ["infohash", "path", "length", "path_hex"]
    assert len(files) == multi["file_count"] and files["length"].sum() == multi["total_bytes"]
    assert [f["path"] for f in multi["files"]] == list(files["path"])
    with pytest.raises(KeyError):
        index.files("00" * 20)
    with pytest.raises(ValueError, match="is not an infohash"):
        index.files("xyz")

    stats = index.stats().set_index(["group", "key"])["count"]
    cli = run_cli(estudely_bin, "stats", "--db", str(index_path), "--format", "json")
    want = json.loads(cli.stdout)
    assert stats["totals", "torrents"] == want["torrents"] == TORRENTS
    assert stats["by_version", "v1"] == want["by_version"]["v1"]
    assert {k: v for (g, k), v in stats.items() if g == "by_source"} == want["by_source"]
