#!/usr/bin/env python3
"""A hostile DHT node for the fault tests (crates/estudely/tests/faults.rs).

Answers every KRPC query (ping, find_node, get_peers, sample_infohashes, announce_peer)
with replies that point at bogon addresses: private, shared, link-local, multicast,
broadcast, "this network", documentation and reserved IPv4 ranges, port 0 on a loopback
address, and IPv6 unique-local, link-local and IPv4-mapped-private addresses, as nodes
(`nodes`, `nodes6`) and as peers (`values`). `sample_infohashes` also returns a few real
samples, whose `get_peers` replies list one valid loopback peer among the bogons.

It is only ever run inside a network namespace whose only way out is a device that leads
nowhere, so whatever a crawler does with these addresses stays inside the namespace.

Usage: hostile_node.py IP PORT [SECONDS]   (prints `ready IP:PORT` once bound, exits after
SECONDS, default 300, or when killed).
"""

import hashlib
import socket
import sys
import time

BOGONS_V4 = [
    ("10.0.0.1", 6881),
    ("192.168.1.1", 6881),
    ("172.16.0.5", 6881),
    ("100.64.1.1", 6881),
    ("169.254.1.1", 6881),
    ("224.0.0.1", 6881),
    ("255.255.255.255", 6881),
    ("0.0.0.0", 6881),
    ("192.0.2.1", 6881),
    ("240.0.0.1", 6881),
    ("127.0.60.2", 0),  # valid loopback address, port 0
]
BOGONS_V6 = [("fc00::1", 6881), ("fe80::1", 6881), ("::ffff:10.0.0.1", 6881)]
# The one valid peer returned for the real samples.
GOOD_PEER = ("127.0.60.9", 6881)
SAMPLES = [hashlib.sha1(b"estudely-hostile-%d" % i).digest() for i in range(4)]


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def bdecode(data, i=0):
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i : i + 1] != b"e":
            x, i = bdecode(data, i)
            out.append(x)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i : i + 1] != b"e":
            k, i = bdecode(data, i)
            out[k], i = bdecode(data, i)
        return out, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1 : colon + 1 + n], colon + 1 + n


def node_id(i):
    return hashlib.sha1(b"estudely-bogon-node-%d" % i).digest()


def compact4(ip, port):
    return socket.inet_aton(ip) + port.to_bytes(2, "big")


def compact6(ip, port):
    return socket.inet_pton(socket.AF_INET6, ip) + port.to_bytes(2, "big")


NODES = b"".join(node_id(i) + compact4(ip, p) for i, (ip, p) in enumerate(BOGONS_V4))
NODES6 = b"".join(node_id(100 + i) + compact6(ip, p) for i, (ip, p) in enumerate(BOGONS_V6))
BAD_VALUES = [compact4(ip, p) for ip, p in BOGONS_V4] + [compact6(ip, p) for ip, p in BOGONS_V6]


def reply(my_id, msg):
    q = msg.get(b"q", b"")
    r = {"id": my_id}
    if q in (b"find_node", b"get_peers", b"sample_infohashes"):
        r["nodes"] = NODES
        r["nodes6"] = NODES6
    if q == b"get_peers":
        r["token"] = b"hostile"
        ih = msg.get(b"a", {}).get(b"info_hash", b"")
        values = list(BAD_VALUES)
        if ih in SAMPLES:
            values.append(compact4(*GOOD_PEER))
        r["values"] = values
    if q == b"sample_infohashes":
        r["interval"] = 1
        r["num"] = len(SAMPLES)
        r["samples"] = b"".join(SAMPLES)
    if q not in (b"ping", b"find_node", b"get_peers", b"sample_infohashes", b"announce_peer"):
        return {"t": msg.get(b"t", b""), "y": "e", "e": [204, "Method Unknown"]}
    return {"t": msg.get(b"t", b""), "y": "r", "r": r}


def main():
    ip, port = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    my_id = hashlib.sha1(b"estudely-hostile-node").digest()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, port))
    print("ready %s:%d" % sock.getsockname(), flush=True)
    deadline = time.monotonic() + seconds
    queries = 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
        try:
            data, addr = sock.recvfrom(65536)
        except socket.timeout:
            continue
        try:
            msg, _ = bdecode(data)
            if not isinstance(msg, dict) or msg.get(b"y") != b"q":
                continue
            sock.sendto(bencode(reply(my_id, msg)), addr)
            queries += 1
        except (ValueError, IndexError, TypeError, AttributeError, OSError):
            continue
    print("answered %d queries" % queries, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
