"""Shared helpers for the libtorrent interop scripts (loopback only).

- a tiny bencode encoder/decoder (no third-party packages),
- the libtorrent settings needed to run a DHT swarm on 127.0.0.0/8,
- creation of small seedable torrents of various kinds.
"""
import os
import sys

import libtorrent as lt


# ---------------------------------------------------------------- bencode --

def bdecode(data):
    """Decode a complete bencoded bytes object (raises ValueError)."""
    val, end = _bdec(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after offset %d" % end)
    return val


def _bdec(b, i):
    c = b[i:i + 1]
    if c == b"i":
        end = b.index(b"e", i)
        return int(b[i + 1:end]), end + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = _bdec(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = _bdec(b, i)
            out[k], i = _bdec(b, i)
        return out, i + 1
    if c.isdigit():
        colon = b.index(b":", i)
        n = int(b[i:colon])
        if colon + 1 + n > len(b):
            raise ValueError("truncated string")
        return b[colon + 1:colon + 1 + n], colon + 1 + n
    raise ValueError("bad bencode at offset %d" % i)


def bencode(v):
    """Encode ints, bytes/str, lists and dicts (keys sorted as BEP 3 demands)."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError("cannot bencode %r" % type(v))


# --------------------------------------------------------------- settings --

ALERT_MASK = (lt.alert.category_t.dht_log_notification
              | lt.alert.category_t.dht_notification
              | lt.alert.category_t.dht_operation_notification
              | lt.alert.category_t.status_notification
              | lt.alert.category_t.error_notification)


def loopback_settings(listen, extra=None):
    """Settings pack for a DHT node that only ever talks to loopback peers.

    `listen` is a libtorrent listen_interfaces string, e.g. "127.0.2.1:0".
    Unknown keys (other libtorrent versions) are dropped with a warning.
    (libtorrent 2.1 has no `outgoing_interfaces`; the DHT always sends from
    its listen socket, so binding `listen_interfaces` is enough.)
    """
    wanted = {
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Never contact the public routers (default: dht.libtorrent.org:25401).
        "dht_bootstrap_nodes": "",
        # 127.x.y.z all look like one /24 ("same network") and are "dark";
        # without these libtorrent refuses to keep several of them.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        # BEP 42: node ids derived from 127.x addresses never validate.
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "allow_multiple_connections_per_ip": True,
        "listen_interfaces": listen,
        "alert_mask": ALERT_MASK,
        "alert_queue_size": 100000,
        # loopback has no real bandwidth limit; don't rate-limit DHT replies.
        "dht_upload_rate_limit": 1000000,
        "dht_block_ratelimit": 1000,
        # tests open many metadata connections at once; the default backlog of 5 drops SYNs
        "listen_queue_size": 64,
    }
    wanted.update(extra or {})
    known = lt.default_settings()
    pack = {}
    for k, v in wanted.items():
        if k in known:
            pack[k] = v
        else:
            print("warning: libtorrent %s has no setting %r" % (lt.__version__, k), file=sys.stderr)
    return pack


def session_node_ids(ses):
    """{"v4": 40-hex, "v6": 40-hex} DHT node ids (one per listen socket family)."""
    st = lt.write_session_params(ses.session_state()).get(b"dht state") or {}
    # entries are node-id(20) + the local IP the id belongs to (4 or 16 bytes)
    return {("v6" if len(e) == 36 else "v4"): e[:20].hex() for e in st.get(b"node-id") or []}


def session_node_id(ses):
    """The session's IPv4 DHT node id as 40-hex, or None if not started yet."""
    return session_node_ids(ses).get("v4")


def routing_table_size(ses):
    """Number of nodes in the session's DHT routing table (IPv4 + IPv6)."""
    st = lt.write_session_params(ses.session_state()).get(b"dht state") or {}
    return len(st.get(b"nodes") or []) + len(st.get(b"nodes6") or [])


# --------------------------------------------------------------- torrents --

KINDS = ("v1", "v1multi", "bigmeta", "hybrid", "v2", "utf8")


def _write(path, size, seed):
    """Deterministic pseudo-random content (cheap, reproducible)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    block = (seed.encode() * 64)[:4096]
    with open(path, "wb") as f:
        for off in range(0, size, len(block)):
            f.write(block[:size - off])


def make_torrent(root, kind, name):
    """Create data under `root`/`name` and a torrent for it.

    Returns (torrent_info, description dict). Everything is small except
    `bigmeta`: a sparse 36 MiB file with 16 KiB pieces, which makes the
    bencoded info dict ~46 KB (> 40 KiB) without using disk space.
    """
    flags, piece = lt.create_torrent.v1_only, 0
    path = os.path.join(root, name)
    if kind in ("v1", "hybrid", "v2", "utf8"):
        _write(path, 50000, name)
        if kind == "hybrid":
            flags = 0  # libtorrent 2 default: v1 + v2 in one info dict
        elif kind == "v2":
            flags = lt.create_torrent.v2_only
    elif kind == "v1multi":
        for i in range(3):
            _write(os.path.join(path, "sub%d" % (i % 2), "file%d.bin" % i), 20000 + i, name + str(i))
    elif kind == "bigmeta":
        with open(path, "wb") as f:
            f.truncate(36 << 20)
        piece = 16384
    else:
        raise ValueError("unknown torrent kind %r" % kind)
    ct = lt.create_torrent(lt.list_files(path), piece, flags)
    lt.set_piece_hashes(ct, root)
    ti = lt.torrent_info(ct.generate())
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    fs = ti.files()
    real = [i for i in range(fs.num_files()) if not fs.file_flags(i) & fs.flag_pad_file]
    # Keys libtorrent announces under: the v1 hash and/or the truncated v2 hash.
    keys = [k for k in (v1, v2 and v2[:40]) if k]
    desc = {
        "infohash": v1,
        "infohash_v2": v2,
        "dht_key": keys[0],
        "dht_keys": keys,
        "name": ti.name(),
        "file_count": len(real),
        "total_bytes": sum(fs.file_size(i) for i in real),
        "piece_length": ti.piece_length(),
        "kind": kind,
        "info_size": len(ti.info_section()),
    }
    return ti, desc
