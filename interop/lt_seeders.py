#!/usr/bin/env python3
"""Real libtorrent serving the metadata of given .torrent files on loopback, and a
libtorrent view of .torrent files (for checking `estudely metadata` against it).

    lt_seeders.py serve --ip 127.0.30.5 [--ipv6] [--seconds 120] [--set KEY=VALUE]... FILE.torrent...
    lt_seeders.py inspect FILE.torrent...

`serve`: one libtorrent session (no DHT, LSD, UPnP or NAT-PMP) listening on IP (and
[::1] with --ipv6), seeding every torrent in `seed_mode` with an empty save path: no
content is needed, because serving metadata (BEP 9) never reads a piece. Prints ONE
JSON ready line, then exits on `quit` or stdin EOF (exit 0), or after --seconds (exit 3).

`inspect`: one JSON line per file, what `lt.torrent_info(path)` reports.

Both describe a torrent as:
  {"path", "infohash" (v1 hex or null), "infohash_v2" (64 hex or null),
   "dht_keys" (v1 and/or truncated v2), "name", "num_files", "total_size" (libtorrent's,
   pad files INCLUDED), "file_count", "total_bytes" (pad files excluded), "pad_files",
   "piece_length", "info_size"}
"""
import argparse
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import libtorrent as lt

from ltlib import loopback_settings


def describe(ti, path):
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    fs = ti.layout()  # files() is deprecated in 2.1
    pads = [i for i in range(fs.num_files()) if fs.file_flags(i) & fs.flag_pad_file]
    real = [i for i in range(fs.num_files()) if i not in pads]
    return {
        "path": path,
        "infohash": v1,
        "infohash_v2": v2,
        "dht_keys": [k for k in (v1, v2 and v2[:40]) if k],
        "name": ti.name(),
        "num_files": fs.num_files(),
        "total_size": fs.total_size(),
        "file_count": len(real),
        "total_bytes": sum(fs.file_size(i) for i in real),
        "pad_files": len(pads),
        "piece_length": ti.piece_length(),
        "info_size": len(ti.info_section()),
    }


def inspect(paths):
    for p in paths:
        try:
            d = describe(lt.torrent_info(p), p)
        except RuntimeError as e:
            d = {"path": p, "error": str(e)}
        print(json.dumps(d, ensure_ascii=False), flush=True)


def serve(args):
    if not ipaddress.ip_address(args.ip).is_loopback:
        sys.exit("--ip must be a loopback address")
    tmp = tempfile.mkdtemp(prefix="lt_seeders_")  # stays empty: nothing is downloaded

    def deadline():  # never linger, whatever the main thread does
        shutil.rmtree(tmp, ignore_errors=True)
        os._exit(3)
    timer = threading.Timer(args.seconds, deadline)
    timer.daemon = True
    timer.start()
    listen = "%s:0" % args.ip + (",[::1]:0" if args.ipv6 else "")
    extra = {"enable_dht": False}
    for kv in args.set:
        k, _, v = kv.partition("=")
        extra[k] = int(v) if v.lstrip("-").isdigit() else {"true": True, "false": False}.get(v, v)
    settings = loopback_settings(listen, extra)
    ses = lt.session(settings)
    torrents, handles = [], []
    for p in args.torrents:
        ti = lt.torrent_info(p)
        atp = lt.add_torrent_params()
        atp.ti, atp.save_path, atp.flags = ti, tmp, lt.torrent_flags.seed_mode
        handles.append(ses.add_torrent(atp))
        torrents.append(describe(ti, p))
    # every torrent past its checking states (bounded): until then libtorrent may drop
    # connections for it. (With seed_mode and no files the state settles on downloading.)
    checking = (lt.torrent_status.states.checking_files,
                lt.torrent_status.states.checking_resume_data)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10 and any(h.status().state in checking for h in handles):
        time.sleep(0.05)
    # listen sockets: wait (bounded) until every interface is up
    ports, t0 = {}, time.monotonic()
    want = 2 if args.ipv6 else 1
    while len(ports) < want and time.monotonic() - t0 < 10:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and a.socket_type == lt.socket_type_t.tcp:
                ports[str(a.address)] = a.port
    ready = {"ready": True, "pid": os.getpid(), "ip": args.ip, "listen_port": ports.get(args.ip),
             "torrents": torrents}
    if args.ipv6:
        ready["ipv6_port"] = ports.get("::1")
    print(json.dumps(ready, ensure_ascii=False), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    threading.Timer(10, lambda: os._exit(4)).start()
    del ses
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--ip", default="127.0.30.1")
    s.add_argument("--ipv6", action="store_true", help="also listen on [::1]")
    s.add_argument("--seconds", type=float, default=120, help="hard self-exit deadline")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra libtorrent setting (repeatable), e.g. listen_queue_size=512")
    s.add_argument("torrents", nargs="+")
    i = sub.add_parser("inspect")
    i.add_argument("torrents", nargs="+")
    args = p.parse_args()
    if args.cmd == "serve":
        serve(args)
    else:
        inspect(args.torrents)


if __name__ == "__main__":
    main()
