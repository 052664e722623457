#!/usr/bin/env python3
"""Capture byte-exact KRPC messages exchanged with a real libtorrent DHT node.

Session 1 (127.0.3.1) is the node under test; session 2 (127.0.3.2) seeds two
torrents and announces them into session 1, so session 1 has peers and
samples to give. A plain UDP socket on 127.0.3.9 (node id 0x11 * 20) sends
hand-made queries and records requests/replies, then lets libtorrent query
*us* and records those. Files go to crates/krpc/tests/vectors/.
Only loopback is used. Run: python3 interop/capture_vectors.py [OUTDIR]
"""
import os
import shutil
import socket
import sys
import tempfile
import time

import libtorrent as lt

from ltlib import bdecode, bencode, loopback_settings, make_torrent

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "crates", "krpc", "tests", "vectors")
MY_ID = b"\x11" * 20
MY_TOKEN = b"tok1"


def wait_alert(ses, cls, pred=lambda a: True, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, cls) and pred(a):
                return a
    return None


def minimal_reply(msg):
    """Our answer to a query from libtorrent: just enough to keep it talking."""
    q, r = msg.get(b"q"), {b"id": MY_ID}
    if q in (b"find_node", b"get_peers"):
        r[b"nodes"] = b""
    if q == b"get_peers":
        r[b"token"] = MY_TOKEN
    if q == b"sample_infohashes":
        r.update({b"interval": 21600, b"num": 0, b"samples": b"", b"nodes": b""})
    return bencode({b"t": msg.get(b"t", b""), b"y": b"r", b"r": r})


class Client:
    """Our fake DHT node; records every query libtorrent sends to us."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.3.9", 0))
        self.port = self.sock.getsockname()[1]
        self.incoming = {}  # method -> first raw query bytes

    def pump(self, seconds, want_tid=None):
        """Receive for up to `seconds`; answer libtorrent's queries; return the
        raw reply whose transaction id is `want_tid` (or None)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                break
            try:
                msg = bdecode(data)
            except ValueError:
                continue
            if msg.get(b"y") == b"q":
                self.incoming.setdefault(msg[b"q"].decode(), data)
                self.sock.sendto(minimal_reply(msg), addr)
            elif want_tid is not None and msg.get(b"t") == want_tid:
                return data
        return None

    def query(self, dest, tid, q, args=None, raw=None):
        """Send one query (or raw bytes) and return (request, reply-or-None)."""
        req = raw if raw is not None else bencode({b"t": tid, b"y": b"q", b"q": q, b"a": args})
        self.sock.sendto(req, dest)
        return req, self.pump(3.0, tid)


def start_session(ip):
    """Session on ip and [::1] (so BEP 32 `want: n6` has something to return).
    Returns (session, {address: UDP port})."""
    ses = lt.session(loopback_settings("%s:0,[::1]:0" % ip))
    ports, end = {}, time.monotonic() + 5
    while len(ports) < 2 and time.monotonic() < end:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and a.socket_type == lt.socket_type_t.utp:
                ports[str(a.address)] = a.port
    if len(ports) < 2:
        sys.exit("could not listen on %s / [::1]: %r" % (ip, ports))
    return ses, ports


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):  # no stale vectors from an earlier run
        if old.endswith(".bin"):
            os.remove(os.path.join(OUT, old))
    tmp = tempfile.mkdtemp(prefix="lt_vectors_")
    files = {}

    def save(name, data):
        files[name] = data
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    try:
        (s1, ports1), (s2, ports2) = start_session("127.0.3.1"), start_session("127.0.3.2")
        p1, p2 = ports1["127.0.3.1"], ports2["127.0.3.2"]
        node1 = ("127.0.3.1", p1)
        s2.add_dht_node(node1)
        s1.add_dht_node(("127.0.3.2", p2))
        s2.add_dht_node(("::1", ports1["::1"]))
        s1.add_dht_node(("::1", ports2["::1"]))
        time.sleep(1.0)
        infohashes = []
        for j, kind in enumerate(("v1", "v1multi")):
            ti, desc = make_torrent(tmp, kind, "vectors-%s-%d" % (kind, j))
            atp = lt.add_torrent_params()
            atp.ti, atp.save_path, atp.flags = ti, tmp, lt.torrent_flags.seed_mode
            s2.add_torrent(atp)
            infohashes.append(bytes.fromhex(desc["infohash"]))
            s2.dht_announce(lt.sha1_hash(infohashes[-1]), p2, 0)
        for ih in infohashes:
            if not wait_alert(s1, lt.dht_announce_alert, lambda a: bytes(a.info_hash.to_bytes()) == ih):
                print("warning: announce of %s not seen by session 1" % ih.hex(), file=sys.stderr)
        ih = infohashes[0]

        c = Client()
        q = c.query
        for name, (tid, meth, args) in {
            "ping": (b"pg", b"ping", {b"id": MY_ID}),
            "find_node": (b"fn", b"find_node", {b"id": MY_ID, b"target": b"\x22" * 20}),
            "find_node_want_n4_n6": (b"fw", b"find_node",
                                     {b"id": MY_ID, b"target": b"\x22" * 20, b"want": [b"n4", b"n6"]}),
        }.items():
            req, rep = q(node1, tid, meth, args)
            save(name + "_query.bin", req)
            if rep:
                save(name + "_response.bin", rep)

        req, rep = q(node1, b"gp", b"get_peers", {b"id": MY_ID, b"info_hash": ih})
        save("get_peers_query.bin", req)
        token = None
        if rep:
            save("get_peers_response_values.bin", rep)
            token = bdecode(rep)[b"r"].get(b"token")
        req, rep = q(node1, b"gn", b"get_peers", {b"id": MY_ID, b"info_hash": b"\x33" * 20})
        save("get_peers_unknown_query.bin", req)
        if rep:
            save("get_peers_response_nodes.bin", rep)
        if token:
            req, rep = q(node1, b"ap", b"announce_peer",
                         {b"id": MY_ID, b"info_hash": ih, b"port": 6881, b"token": token})
            save("announce_peer_query.bin", req)
            if rep:
                save("announce_peer_response.bin", rep)
            req, rep = q(node1, b"ai", b"announce_peer", {b"id": MY_ID, b"implied_port": 1,
                                                           b"info_hash": ih, b"port": 6881, b"token": token})
            save("announce_peer_implied_port_query.bin", req)
            if rep:
                save("announce_peer_implied_port_response.bin", rep)
        req, rep = q(node1, b"si", b"sample_infohashes", {b"id": MY_ID, b"target": b"\x44" * 20})
        save("sample_infohashes_query.bin", req)
        if rep:
            save("sample_infohashes_response.bin", rep)

        # malformed queries: keep those libtorrent answers with an `e` message
        errors = [
            ("unknown_method", b"e1", b"frobnicate", {b"id": MY_ID}, None),
            ("missing_a", None, None, None, b"d1:q4:ping1:t2:e21:y1:qe"),
            ("missing_id", b"e3", b"ping", {}, None),
            ("bad_token", b"e4", b"announce_peer",
             {b"id": MY_ID, b"info_hash": ih, b"port": 6881, b"token": b"nope"}, None),
            ("missing_info_hash", b"e5", b"get_peers", {b"id": MY_ID}, None),
            ("short_id", b"e6", b"ping", {b"id": b"\x11" * 19}, None),
        ]
        first_error = None
        for label, tid, meth, args, raw in errors:
            tid = tid or b"e2"
            req, rep = q(node1, tid, meth, args, raw)
            if rep and bdecode(rep).get(b"y") == b"e":
                save("error_%s_query.bin" % label, req)
                save("error_%s_response.bin" % label, rep)
                first_error = first_error or rep
            else:
                print("note: %s got %s" % (label, "no reply" if rep is None else "a non-error reply"))
        if first_error:
            save("error_response.bin", first_error)

        # now let libtorrent query us: add our socket, then drive lookups
        s1.add_dht_node(("127.0.3.9", c.port))
        c.pump(3.0)
        s1.dht_get_peers(lt.sha1_hash(b"\x55" * 20))
        c.pump(2.0)
        s1.dht_announce(lt.sha1_hash(b"\x66" * 20), p1, 0)
        c.pump(2.0)
        s1.dht_sample_infohashes(("127.0.3.9", c.port), lt.sha1_hash(b"\x77" * 20))
        c.pump(2.0)
        for meth, data in sorted(c.incoming.items()):
            save("lt_sent_%s_query.bin" % meth, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    summarize(files)


def show(v, indent=""):
    """Human-readable bencode value (binary strings as hex)."""
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k.decode(errors="replace"), show(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if isinstance(v, bytes):
        ok = v and all(32 <= c < 127 for c in v)
        return repr(v.decode()) if ok else "<%d bytes %s>" % (len(v), v.hex()[:32] + ("..." if len(v) > 16 else ""))
    return str(v)


def summarize(files):
    print("libtorrent %s -> %s" % (lt.__version__, os.path.normpath(OUT)))
    for name in sorted(files):
        msg = bdecode(files[name])  # every file must be one complete bencoded dict
        print("%-45s %4d B  %s" % (name, len(files[name]), show(msg)))
        r = msg.get(b"r", {})
        checks = []
        if b"samples" in r:
            checks.append("samples %% 20 == %d, interval=%s num=%s nodes=%d" % (
                len(r[b"samples"]) % 20, r.get(b"interval"), r.get(b"num"), len(r.get(b"nodes", b"")) // 26))
        if b"values" in r:
            checks.append("values: " + ", ".join("%d.%d.%d.%d:%d" % (*v[:4], int.from_bytes(v[4:6], "big"))
                                                 if len(v) == 6 else "len %d!" % len(v) for v in r[b"values"]))
        for key, size in ((b"nodes", 26), (b"nodes6", 38)):
            if key in r:
                v, addrs = r[key], []
                for i in range(0, len(v) - size + 1, size):
                    ip = v[i + 20:i + size - 2]
                    ip = ".".join(map(str, ip)) if len(ip) == 4 else "[%s]" % socket.inet_ntop(socket.AF_INET6, ip)
                    addrs.append("%s..@%s:%d" % (v[i:i + 3].hex(), ip, int.from_bytes(v[i + size - 2:i + size], "big")))
                checks.append("%s: len %% %d == %d: %s" % (key.decode(), size, len(v) % size, " ".join(addrs)))
        for line in checks:
            print("%47s-> %s" % ("", line))


if __name__ == "__main__":
    main()
