"""Single KRPC queries to a testnet node, for learning."""

from __future__ import annotations

import pytest

import estudely
from estudely import query


def test_ping_sample_and_get_peers(net):
    node = net.manifest["nodes"][3]
    pong = query.ping(node["addr"], bind="127.77.200.70:0")
    assert pong["id"] == node["id"] and pong["from"] == node["addr"]

    sample = query.sample_infohashes(node["addr"], bind="127.77.200.70:0")
    infohashes = {t["infohash"] for t in net.manifest["torrents"]}
    assert sample["interval"] == 60 and set(sample["samples"]) <= infohashes

    torrent = net.manifest["torrents"][0]
    holders = [n["addr"] for n in net.manifest["nodes"]]
    found = []
    for addr in holders:
        reply = query.get_peers(addr, torrent["infohash"], bind="127.77.200.70:0")
        found += reply["values"]
    assert torrent["peers"][0] in found


def test_no_reply_is_an_estudely_error():
    # Nothing listens there: the query times out.
    with pytest.raises(estudely.EstudelyError, match="no reply from 127.77.71.1:9 to ping within 0.5 s"):
        query.ping("127.77.71.1:9", timeout=0.5, bind="127.77.200.71:0")
