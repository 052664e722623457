"""Bencode and info dicts, for learners; and the torrents `collect` saves parse back to
its rows."""

from __future__ import annotations

import pytest

import estudely
from estudely import bencode
from conftest import TORRENTS


def test_bencode_round_trip():
    # Keys out of order are read as received (real clients send them so).
    assert list(bencode.decode(b"d1:bi1e1:ai2ee")) == [b"b", b"a"]
    value = {b"name": b"x\xff", b"length": 42, b"list": [1, b"a", [b"", -7]], b"d": {}}
    data = bencode.encode(value)
    assert data == b"d1:dde6:lengthi42e4:listli1e1:al0:i-7eee4:name2:x\xffe"
    assert bencode.decode(data) == value
    assert bencode.encode({"b": "é", "a": (1, 2)}) == b"d1:ali1ei2ee1:b2:\xc3\xa9e"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"d4:name", "unexpected end of input at byte 7"),
        (b"i1ei2e", "trailing data at byte 3"),
        (b"d1:ai1e1:ai2ee", "dict key at byte 7 is duplicated"),
        (b"di1ei2ee", "dict key at byte 1 is not a byte string"),
        (b"l" * 600, "nesting deeper than 64"),
    ],
)
def test_bad_bencode_is_a_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        bencode.decode(data)


def test_encode_refuses_what_bencode_has_not():
    for bad in (True, None, 1.5, {1: 2}):
        with pytest.raises(TypeError):
            bencode.encode(bad)
    with pytest.raises(ValueError):
        bencode.encode({"a": 1, b"a": 2})


def test_saved_torrents_parse_to_their_rows(net, tmp_path):
    df = estudely.collect(
        bootstrap=[net.bootstrap], bind=["127.77.200.60:0"], max_infohashes=TORRENTS,
        rate=200, overall_timeout=90, save_torrents=tmp_path,
    )
    assert df["metadata_ok"].all()
    for row in df.itertuples():
        info = estudely.parse_info((tmp_path / f"{row.infohash}.torrent").read_bytes())
        assert info["infohash"] == row.infohash
        assert info["name_bytes"] == row.name_bytes
        assert (info["file_count"], info["total_bytes"], info["piece_length"]) == (
            row.file_count, row.total_bytes, row.piece_length,
        )
        assert sum(f["length"] for f in info["files"]) == row.total_bytes
    with pytest.raises(ValueError):
        estudely.parse_info(b"d4:name1:xe")
