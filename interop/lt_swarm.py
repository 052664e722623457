#!/usr/bin/env python3
"""A swarm of real libtorrent DHT nodes on loopback, driven over stdin/stdout.

Session i binds to <base-ip>.(i+1) (or <ip-per-slash24>.(i+1).1), seeds a few self-made torrents and
announces them into the swarm. Once ready, ONE JSON line is printed; then
every stdin command gets exactly one JSON line back. See interop/README.md
for the protocol. Only loopback addresses are ever contacted.
"""
import argparse
import collections
import ipaddress
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

import libtorrent as lt

from ltlib import KINDS, bdecode, loopback_settings, make_torrent, routing_table_size, session_node_ids

PKT_RE = re.compile(r"^(<==|==>) \[(\[[^]]+\]:\d+|[^]]+)\]")  # dht_pkt_alert.message() prefix
TRAV_RE = re.compile(r"\[(\d+)\] (NEW target: ([0-9a-f]{40})|COMPLETED)")


def hexid(h):
    return bytes(h.to_bytes()).hex() if hasattr(h, "to_bytes") else str(h)


def ep_str(ep):
    ip, port = ep[0], ep[1]
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def compact_nodes(b):
    """BEP 5 compact node info (26 bytes each, IPv4) -> [{"id","addr"}]."""
    return [{"id": b[i:i + 20].hex(),
             "addr": "%s:%d" % (".".join(map(str, b[i + 20:i + 24])), int.from_bytes(b[i + 24:i + 26], "big"))}
            for i in range(0, len(b) - 25, 26)]


def parse_settings(kvs):
    """KEY=VALUE strings -> a settings dict (int, true/false, or string values)."""
    out = {}
    for kv in kvs:
        k, _, v = kv.partition("=")
        out[k] = int(v) if v.lstrip("-").isdigit() else {"true": True, "false": False}.get(v, v)
    return out


def parse_ep(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError("refusing non-loopback address %s" % host)
    return host, int(port)


class Node:
    """One libtorrent session plus the alert-derived state the commands need."""

    def __init__(self, idx, ip, args):
        self.idx, self.ip = idx, ip
        listen = "%s:%d" % (ip, args.port)
        if args.ipv6:
            listen += ",[::1]:0"  # only one ::1, so always an ephemeral port
        extra = {"dht_sample_infohashes_interval": args.sample_interval}
        if args.lt_defaults:  # as on the real network (each session has its own /24)
            extra.update(dht_restrict_routing_ips=True, dht_restrict_search_ips=True)
        extra.update(parse_settings(args.set))
        self.ses = lt.session(loopback_settings(listen, extra))
        self.cond = threading.Condition()
        self.ports = {}              # listen address -> UDP (DHT) port
        self.log = collections.deque(maxlen=50000)  # bounded memory
        self.announced_to_me = set()  # DHT keys other peers announced to us
        self.live = {}               # node id hex -> list of {"id","addr"}
        self.samples = []            # dht_sample_infohashes_alert results
        self.sample_nodes = {}       # addr -> `nodes` of its last raw sample reply
        self.peers = {}              # infohash hex -> set of "ip:port"
        self.traversals = {}         # traversal number -> target hex
        self.completed = set()       # targets whose traversal finished
        self.torrents = []
        self.also_seeds = []         # other nodes' torrents this one seeds too (--seeders-per-torrent)
        self.running = True
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    # -- alert handling (background thread) ---------------------------------
    def _drain(self):
        while self.running:
            self.ses.wait_for_alert(100)
            alerts = self.ses.pop_alerts()
            now = time.monotonic()
            with self.cond:
                for a in alerts:
                    try:
                        self._handle(a, now)
                    except Exception as e:  # never let one odd alert stop draining
                        print("node %d: %s: %r" % (self.idx, type(a).__name__, e), file=sys.stderr)
                self.cond.notify_all()

    def _handle(self, a, now):
        if isinstance(a, lt.dht_pkt_alert):
            msg = a.message()
            m = PKT_RE.match(msg)
            ent = {"node": self.idx, "t": now, "kind": "pkt",
                   "dir": "in" if m and m.group(1) == "<==" else "out",
                   "addr": m.group(2) if m else None, "y": None, "q": None, "tid": None, "msg": msg}
            try:
                d = bdecode(bytes(a.pkt_buf))
                ent["y"] = d.get(b"y", b"").decode(errors="replace")
                ent["q"] = d[b"q"].decode(errors="replace") if b"q" in d else None
                ent["tid"] = d.get(b"t", b"").hex()
                r = d.get(b"r") if ent["dir"] == "in" else None
                if isinstance(r, dict) and b"samples" in r:
                    # dht_sample_infohashes_alert.nodes is always empty in
                    # libtorrent 2.1.1, so take `nodes` from the raw reply.
                    self.sample_nodes[ent["addr"]] = compact_nodes(r.get(b"nodes", b""))
            except (ValueError, KeyError, AttributeError, IndexError, TypeError):
                pass
            self.log.append(ent)
        elif isinstance(a, lt.dht_log_alert):
            msg = a.log_message()
            self.log.append({"node": self.idx, "t": now, "kind": "log", "dir": None, "addr": None,
                             "y": None, "q": None, "tid": None, "msg": msg})
            m = TRAV_RE.search(msg)
            if m and m.group(3):
                self.traversals[m.group(1)] = m.group(3)
            elif m and m.group(1) in self.traversals:
                self.completed.add(self.traversals.pop(m.group(1)))
        elif isinstance(a, lt.dht_announce_alert):
            self.announced_to_me.add(hexid(a.info_hash))
        elif isinstance(a, lt.dht_live_nodes_alert):
            self.live[hexid(a.node_id)] = [{"id": hexid(n[0]) if isinstance(n, tuple) else hexid(n["nid"]),
                                            "addr": ep_str(n[1] if isinstance(n, tuple) else n["endpoint"])}
                                           for n in a.nodes]
        elif isinstance(a, lt.dht_sample_infohashes_alert):
            ep = ep_str(a.endpoint)
            self.samples.append({"endpoint": ep, "interval": int(a.interval.total_seconds()),
                                 "num_infohashes": a.num_infohashes,
                                 "samples": [hexid(s) for s in a.samples],
                                 "nodes": self.sample_nodes.pop(ep, [])})
        elif isinstance(a, lt.dht_get_peers_reply_alert):
            self.peers.setdefault(hexid(a.info_hash), set()).update(ep_str(p) for p in a.peers())
        elif isinstance(a, lt.listen_succeeded_alert):
            if a.socket_type == lt.socket_type_t.utp:  # the UDP socket the DHT uses
                self.ports[str(a.address)] = a.port
        elif isinstance(a, lt.listen_failed_alert):
            print("node %d: %s" % (self.idx, a.message()), file=sys.stderr)

    def wait(self, pred, timeout):
        """Wait (bounded) until pred() is true under the lock; returns pred()."""
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def describe(self):
        ids = session_node_ids(self.ses)
        d = {"ip": self.ip, "dht_port": self.ports.get(self.ip), "listen_port": self.ses.listen_port(),
             "node_id": ids.get("v4"), "torrents": self.torrents}
        if "::1" in self.ports:
            d["ipv6"] = {"ip": "::1", "dht_port": self.ports["::1"], "node_id": ids.get("v6")}
        return d


class Swarm:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="lt_swarm_")
        self.nodes = [Node(i, node_ip(args, i), args) for i in range(args.nodes)]
        self.extra = [parse_ep(b) for b in args.bootstrap]

    def start(self):
        t0 = time.monotonic()
        for n in self.nodes:  # listening sockets up + DHT node id known
            n.wait(lambda n=n: n.ip in n.ports, 5)
        # every node pings every other one (+ --bootstrap) until tables are full
        v6 = self.args.ipv6
        # (a bucket holds 8 nodes, so big swarms need not all know each other)
        want = min(len(self.nodes) - 1, 8) * (2 if v6 else 1)
        while time.monotonic() - t0 < 10:
            missing = [n for n in self.nodes if routing_table_size(n.ses) < want]
            if not missing:
                break
            for n in missing:
                for o in self.nodes:
                    if o is not n:
                        n.ses.add_dht_node((o.ip, o.ports.get(o.ip, 0)))
                        if v6 and "::1" in o.ports:
                            n.ses.add_dht_node(("::1", o.ports["::1"]))
            time.sleep(0.3)
        for n in self.nodes:
            for ep in self.extra:
                n.ses.add_dht_node(ep)
        # seed torrents and announce them explicitly (the automatic announce
        # of a newly added torrent is not immediate)
        kinds = self.args.kinds.split(",")
        copies = min(self.args.seeders_per_torrent, len(self.nodes))
        for n in self.nodes:
            for j in range(self.args.torrents_per_node):
                kind = kinds[(n.idx * self.args.torrents_per_node + j) % len(kinds)]
                base = "Ünïcødé – 日本語" if kind == "utf8" else kind
                ti, desc = make_torrent(self.tmp, kind, "%s-n%d-t%d" % (base, n.idx, j))
                # node n and the next copies-1 nodes seed it (n's `torrents` lists only its own)
                for c in range(copies):
                    s = self.nodes[(n.idx + c) % len(self.nodes)]
                    atp = lt.add_torrent_params()
                    atp.ti, atp.save_path, atp.flags = ti, self.tmp, lt.torrent_flags.seed_mode
                    s.ses.add_torrent(atp)
                    if c:
                        s.also_seeds.append(desc)
                    for key in desc["dht_keys"]:
                        s.ses.dht_announce(lt.sha1_hash(bytes.fromhex(key)), s.ses.listen_port(), 0)
                desc["seeders"] = ["%s:%d" % (s.ip, s.ses.listen_port()) for s in
                                   (self.nodes[(n.idx + c) % len(self.nodes)] for c in range(copies))]
                n.torrents.append(desc)
        # ready when every key reached at least one other node (bounded wait)
        all_ok = len(self.nodes) < 2
        while not all_ok and time.monotonic() - t0 < 20:
            got = set().union(*(o.announced_to_me for o in self.nodes))
            all_ok = all(k in got for n in self.nodes for t in n.torrents for k in t["dht_keys"])
            time.sleep(0.1)
        # settings that would slow the start down (e.g. libtorrent's DoS limits), from now on
        later = parse_settings(self.args.set_after_start)
        for n in self.nodes:
            if later:
                n.ses.apply_settings(later)
        return {"ready": True, "all_announced": all_ok, "pid": os.getpid(),
                "startup_seconds": round(time.monotonic() - t0, 3),
                "nodes": [n.describe() for n in self.nodes]}

    # -- commands (main thread) ---------------------------------------------
    def cmd_live_nodes(self):
        ids = {}
        for n in self.nodes:
            with n.cond:
                n.live.clear()
            ids[n.idx] = session_node_ids(n.ses)
            for nid in ids[n.idx].values():
                n.ses.dht_live_nodes(lt.sha1_hash(bytes.fromhex(nid)))
        out = []
        for n in self.nodes:
            mine = ids[n.idx]
            n.wait(lambda n=n, mine=mine: all(i in n.live for i in mine.values()), 5)
            d = {"ip": n.ip, "node_id": mine.get("v4"), "live": n.live.get(mine.get("v4"), [])}
            if "v6" in mine:
                d["live6"] = n.live.get(mine["v6"], [])
            out.append(d)
        return {"nodes": out}

    def cmd_sample(self, ep, target):
        n0, (ip, port) = self.nodes[0], parse_ep(ep)
        with n0.cond:
            n0.samples.clear()
        n0.ses.dht_sample_infohashes((ip, port), lt.sha1_hash(bytes.fromhex(target)))
        if not n0.wait(lambda: n0.samples, 10):
            return {"error": "timeout"}
        return n0.samples[0]

    def cmd_get_peers(self, ih):
        n0 = self.nodes[0]
        with n0.cond:
            n0.peers.pop(ih, None)
            n0.completed.discard(ih)
        n0.ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(ih)))
        n0.wait(lambda: ih in n0.completed, 10)  # traversal done, or 10 s
        with n0.cond:
            return {"peers": sorted(n0.peers.get(ih, ()))}

    def cmd_announce(self, ih, port):
        self.nodes[0].ses.dht_announce(lt.sha1_hash(bytes.fromhex(ih)), int(port), 0)
        return {"ok": True}

    def cmd_reannounce(self, seconds):
        """Announce every torrent again (as at start), spread evenly over `seconds`."""
        todo = [(n, key) for j in range(self.args.torrents_per_node) for n in self.nodes
                for key in n.torrents[j]["dht_keys"]]
        gap = float(seconds) / max(len(todo), 1)

        def go():
            t0 = time.monotonic()
            for k, (n, key) in enumerate(todo):
                time.sleep(max(0.0, t0 + k * gap - time.monotonic()))
                if not n.running:
                    return
                n.ses.dht_announce(lt.sha1_hash(bytes.fromhex(key)), n.ses.listen_port(), 0)
        threading.Thread(target=go, daemon=True).start()
        return {"ok": True, "announces": len(todo)}

    def cmd_log(self):
        out = []
        for n in self.nodes:
            with n.cond:
                out.extend(n.log)
                n.log.clear()
        return {"log": sorted(out, key=lambda e: e["t"])}

    def handle(self, line):
        parts = line.split()
        cmds = {"live_nodes": (self.cmd_live_nodes, 0), "sample": (self.cmd_sample, 2),
                "get_peers": (self.cmd_get_peers, 1), "announce": (self.cmd_announce, 2),
                "reannounce": (self.cmd_reannounce, 1),
                "log": (self.cmd_log, 0),
                "info": (lambda: {"nodes": [n.describe() for n in self.nodes]}, 0)}
        if not parts or parts[0] not in cmds or len(parts) - 1 != cmds[parts[0]][1]:
            return {"error": "unknown command"}
        args = [a.lower() for a in parts[1:]]
        try:
            for a in args:
                if ":" not in a and not a.isdigit() and len(bytes.fromhex(a)) != 20:
                    raise ValueError("%s is not 40 hex digits" % a)
            return cmds[parts[0]][0](*args)
        except (ValueError, KeyError) as e:
            return {"error": "bad argument: %s" % e}

    def shutdown(self):
        for n in self.nodes:
            n.running = False
        for n in self.nodes:
            n.thread.join(1)
        self.nodes = []  # drops the sessions (destructors close the sockets)
        shutil.rmtree(self.tmp, ignore_errors=True)


def node_ip(args, i):
    """Session i's address: <base-ip>.(i+1), or <ip-per-slash24>.(i+1).1."""
    if args.ip_per_slash24:
        return "%s.%d.1" % (args.ip_per_slash24, i + 1)
    return "%s.%d" % (args.base_ip, i + 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--base-ip", default="127.0.2", help="3-octet loopback prefix")
    p.add_argument("--ip-per-slash24", metavar="PREFIX",
                   help="2-octet loopback prefix: session i on PREFIX.(i+1).1, each in its own /24")
    p.add_argument("--lt-defaults", action="store_true",
                   help="libtorrent's defaults for dht_restrict_routing_ips, dht_restrict_search_ips "
                        "(on) and the sample interval (21600); needs --ip-per-slash24")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral port per node")
    p.add_argument("--torrents-per-node", type=int, default=2)
    p.add_argument("--seeders-per-torrent", type=int, default=1,
                   help="each torrent is seeded (and announced) by this many consecutive sessions")
    p.add_argument("--sample-interval", type=int, default=None,
                   help="dht_sample_infohashes_interval (default 0; 21600 with --lt-defaults)")
    p.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--seconds", type=float, default=120, help="hard self-exit deadline")
    p.add_argument("--ipv6", action="store_true", help="also listen on [::1]")
    p.add_argument("--kinds", default="v1", help="comma list of " + ",".join(KINDS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra libtorrent setting (repeatable)")
    p.add_argument("--set-after-start", action="append", default=[], metavar="KEY=VALUE",
                   help="a libtorrent setting applied once every torrent is announced (repeatable), "
                        "e.g. the default DoS limits, which would slow the start down")
    args = p.parse_args()
    if args.sample_interval is None:
        args.sample_interval = 21600 if args.lt_defaults else 0
    if not ipaddress.ip_address(args.base_ip + ".1").is_loopback:
        p.error("--base-ip must be inside 127.0.0.0/8")
    if args.ip_per_slash24 is not None:
        try:
            ok = args.ip_per_slash24.count(".") == 1 and all(
                ipaddress.ip_address(node_ip(args, i)).is_loopback for i in (0, args.nodes - 1))
        except ValueError:
            ok = False
        if not ok or args.nodes > 254:
            p.error("--ip-per-slash24 must be 2 octets inside 127.0.0.0/8 (at most 254 nodes)")
    if args.lt_defaults and args.ip_per_slash24 is None:
        p.error("--lt-defaults needs --ip-per-slash24 (libtorrent keeps one node per /24)")
    for k in args.kinds.split(","):
        if k not in KINDS:
            p.error("unknown kind %r" % k)
    for b in args.bootstrap:
        try:
            parse_ep(b)
        except ValueError as e:
            p.error("--bootstrap %s: %s" % (b, e))

    swarm = None

    def deadline():  # never linger: hard exit, whatever the main thread does
        print("lt_swarm: --seconds deadline reached, exiting", file=sys.stderr)
        if swarm:
            shutil.rmtree(swarm.tmp, ignore_errors=True)
        os._exit(3)
    timer = threading.Timer(args.seconds, deadline)
    timer.daemon = True
    timer.start()

    swarm = Swarm(args)
    out = sys.stdout
    out.write(json.dumps(swarm.start(), ensure_ascii=False) + "\n")
    out.flush()
    for line in sys.stdin:
        if line.strip() == "quit":
            out.write('{"ok": true}\n')
            out.flush()
            break
        out.write(json.dumps(swarm.handle(line.strip()), ensure_ascii=False) + "\n")
        out.flush()
    # quit or EOF: shut down, but never let a stuck destructor keep us alive
    threading.Timer(10, lambda: os._exit(4)).start()
    swarm.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
