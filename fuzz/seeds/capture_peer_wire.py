#!/usr/bin/env python3
"""Capture real libtorrent peer-wire byte streams (BEP 3 handshake, BEP 10 extended
handshake, BEP 9 metadata exchange) on loopback, for the `peer_wire_frame` fuzz seeds.

    python3 fuzz/seeds/capture_peer_wire.py [OUTDIR]   # needs libtorrent's Python bindings

Starts `interop/lt_seeders.py serve` (one libtorrent 2.1 session on 127.0.71.1, seeding the
torrents of crates/peer-wire/tests/data in seed_mode), then, per torrent, connects with a
plain TCP socket and plays the part of Estudely's metadata fetcher byte for byte: our
handshake (extension bit), our extended handshake (`ut_metadata` = 2, `reqq` = 4), then a
`request` for every metadata piece and one for a piece past the end (libtorrent answers
that with a `reject`). Writes, under OUTDIR (default fuzz/seeds/captures/):

    lt_<torrent>.bin   every byte libtorrent sent on the connection, as received
    es_<torrent>.bin   every byte we sent

The captures are committed; `make_seeds.py` turns them into seeds without libtorrent.
Re-capturing changes only libtorrent's (random) peer id in its handshake.
"""
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "crates", "peer-wire", "tests", "data")
OUT = os.path.join(HERE, "captures")
sys.path.insert(0, HERE)

from make_seeds import (  # noqa: E402
    HANDSHAKE_LEN, OUR_UT_METADATA, PIECE, bdecode, bencode, ext, frames)

IP = "127.0.71.1"
OUR_PEER_ID = b"-ES0001-fuzzcapture0"
TORRENTS = ["single_v1", "multi_v1", "hybrid", "v2_only", "nonascii_hybrid", "big_v1"]


def capture(port, key_hex, name, outdir):
    key = bytes.fromhex(key_hex)
    sent = bytearray()
    s = socket.create_connection((IP, port), timeout=10)
    reserved = bytearray(8)
    reserved[5] |= 0x10  # BEP 10
    sent += b"\x13BitTorrent protocol" + bytes(reserved) + key + OUR_PEER_ID
    sent += ext(0, bencode({b"m": {b"ut_metadata": OUR_UT_METADATA}, b"reqq": 4}))
    s.sendall(sent)

    got = bytearray()
    peer_ut, size, requested, want, done = None, None, False, None, set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
        if len(got) < HANDSHAKE_LEN:
            continue
        for mid, payload in frames(bytes(got[HANDSHAKE_LEN:]), partial_ok=True):
            if mid != 20 or not payload:
                continue
            if payload[0] == 0 and peer_ut is None:
                hs, _ = bdecode(payload, 1)
                peer_ut, size = hs[b"m"][b"ut_metadata"], hs[b"metadata_size"]
            elif payload[0] == OUR_UT_METADATA:
                d, _ = bdecode(payload, 1)  # the dict; piece data (if any) follows it
                done.add((d[b"msg_type"], d[b"piece"]))
        if peer_ut is not None and not requested:
            pieces = (size + PIECE - 1) // PIECE
            reqs = b"".join(ext(peer_ut, bencode({b"msg_type": 0, b"piece": i}))
                            for i in range(pieces + 1))
            s.sendall(reqs)
            sent += reqs
            requested = True
            want = {(1, i) for i in range(pieces)} | {(2, pieces)}
        if requested and want <= done:
            break
    s.close()
    if not requested or not want <= done:
        sys.exit("capture of %s incomplete: got %d bytes, messages %s" % (name, len(got), done))
    for prefix, data in (("lt", got), ("es", sent)):
        with open(os.path.join(outdir, "%s_%s.bin" % (prefix, name)), "wb") as f:
            f.write(bytes(data))
    print("%-16s metadata %6d bytes: received %6d, sent %4d" % (name, size, len(got), len(sent)))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(outdir, exist_ok=True)
    paths = [os.path.join(DATA, t + ".torrent") for t in TORRENTS]
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "interop", "lt_seeders.py"),
                          "serve", "--ip", IP, "--seconds", "60"] + paths,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(p.stdout.readline())
        for name, t in zip(TORRENTS, ready["torrents"]):
            capture(ready["listen_port"], t["dht_keys"][0], name, outdir)
    finally:
        p.stdin.write("quit\n")
        p.stdin.close()
        p.wait(timeout=15)


if __name__ == "__main__":
    main()
