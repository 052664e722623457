#!/usr/bin/env python3
"""Regenerate the fuzz seed corpora fuzz/seeds/<target>/ from real captures.

    python3 fuzz/seeds/make_seeds.py        # from anywhere; standard library only

Inputs (all committed):
  crates/krpc/tests/vectors/*.bin        KRPC datagrams captured from libtorrent 2.1.1
  crates/peer-wire/tests/data/*.torrent  torrents made by libtorrent 2.1.1 (<= 100 KB)
  fuzz/seeds/captures/{lt,es}_*.bin      peer-wire streams captured against libtorrent 2.1.1
                                         (capture_peer_wire.py; needs libtorrent to redo)

Each target directory is emptied and rewritten, so the output is a pure function of the
inputs. See README.md in this directory for what each seed is.
"""
import os
import re
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
VECTORS = os.path.join(ROOT, "crates", "krpc", "tests", "vectors")
TORRENTS = os.path.join(ROOT, "crates", "peer-wire", "tests", "data")
CAPTURES = os.path.join(HERE, "captures")
MAX_TORRENT = 100 * 1024
TARGETS = ["bencode_decode", "krpc_decode", "dht_node", "peer_wire_frame", "peer_wire_info",
           "mse_initiator"]

# What fuzz_targets/peer_wire_frame.rs hard-codes.
FUZZ_KEY = bytes([7]) * 20          # the info-hash both sessions are keyed on
READY_METADATA_SIZE = 40_000        # metadata_size in the "ready" session's peer ext handshake
OUR_UT_METADATA = 2                 # MetadataSession's ut_metadata id (session.rs)
PIECE = 16384


# What fuzz_targets/mse_initiator.rs hard-codes: the initiator's randomness (its private key
# is the first 20 bytes) and SKEY; and the MSE prime (crates/peer-wire/src/mse.rs).
MSE_RANDOM = bytes([3]) * 32
MSE_P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
            "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3621"
            "0000000000090563", 16)


def rc4(key, n):
    """n bytes of RC4 keystream for key."""
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for _ in range(n):
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(s[(s[i] + s[j]) % 256])
    return bytes(out)


def mse_responder(select, pad_b, pad_d, payload):
    """A responder's bytes (Yb, PadB, ENCRYPT(VC, select, len(PadD), PadD), payload) for
    the fuzz target's initiator; payload encrypted too when select is RC4 (2)."""
    import hashlib
    xa = int.from_bytes(MSE_RANDOM[:20], "big")
    xb = int.from_bytes(bytes(range(101, 121)), "big")
    ya = pow(2, xa, MSE_P)
    yb = pow(2, xb, MSE_P).to_bytes(96, "big")
    secret = pow(ya, xb, MSE_P).to_bytes(96, "big")
    key_b = hashlib.sha1(b"keyB" + secret + FUZZ_KEY).digest()
    plain = bytes(8) + struct.pack(">IH", select, len(pad_d)) + pad_d
    if select == 2:
        plain += payload
    ks = rc4(key_b, 1024 + len(plain))[1024:]
    out = yb + pad_b + bytes(a ^ b for a, b in zip(plain, ks))
    return out if select == 2 else out + payload


# ------------------------------------------------------------ tiny bencode --

def bspan(b, i=0):
    """End offset of the bencoded value starting at b[i] (raises ValueError)."""
    c = b[i:i + 1]
    if c == b"i":
        return b.index(b"e", i) + 1
    if c in (b"l", b"d"):
        i += 1
        while b[i:i + 1] != b"e":
            if not b[i:i + 1]:
                raise ValueError("unterminated list/dict")
            i = bspan(b, i)
        return i + 1
    if c.isdigit():
        colon = b.index(b":", i)
        end = colon + 1 + int(b[i:colon])
        if end > len(b):
            raise ValueError("truncated string")
        return end
    raise ValueError("bad bencode at offset %d" % i)


def bdecode(b, i=0):
    """(value, end): ints, bytes, lists, dicts (keys as bytes). Like interop/ltlib.py's, which
    cannot be imported here without libtorrent."""
    c = b[i:i + 1]
    if c == b"i":
        end = b.index(b"e", i)
        return int(b[i + 1:end]), end + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = bdecode(b, i)
            out[k], i = bdecode(b, i)
        return out, i + 1
    end = bspan(b, i)
    colon = b.index(b":", i)
    return b[colon + 1:end], end


def dict_value_raw(b, key):
    """The raw bytes of top-level dict b's value for key (the exact span, not re-encoded)."""
    if b[:1] != b"d":
        raise ValueError("not a dict")
    i = 1
    while b[i:i + 1] != b"e":
        k, i = bdecode(b, i)
        end = bspan(b, i)
        if k == key:
            return b[i:end]
        i = end
    raise KeyError(key)


def bencode(v):
    """Encode ints, bytes and dicts with bytes keys (sorted, as BEP 3 demands)."""
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


# --------------------------------------------------------------- peer wire --

HANDSHAKE_LEN = 68


def frames(stream, partial_ok=False):
    """(id, payload) of every complete frame of a stream without handshake; id None = keep-alive.
    A trailing partial frame is an error unless partial_ok."""
    out, at = [], 0
    while at + 4 <= len(stream):
        n = struct.unpack(">I", stream[at:at + 4])[0]
        if at + 4 + n > len(stream):
            break
        body = stream[at + 4:at + 4 + n]
        out.append((body[0] if body else None, body[1:]))
        at += 4 + n
    if at != len(stream) and not partial_ok:
        raise ValueError("trailing partial frame")
    return out


def frame(mid, payload=b""):
    return struct.pack(">IB", len(payload) + 1, mid) + payload


def ext(ext_id, payload):
    return frame(20, bytes([ext_id]) + payload)


def with_key(stream):
    """A captured stream with its handshake's info-hash replaced by the fuzz target's key."""
    assert stream[:20] == b"\x13BitTorrent protocol"
    return stream[:28] + FUZZ_KEY + stream[48:]


# ------------------------------------------------------------------ seeds --

def read(path):
    with open(path, "rb") as f:
        return f.read()


def listdir(d, suffix):
    return sorted(f for f in os.listdir(d) if f.endswith(suffix))


def main():
    seeds = {t: {} for t in TARGETS}

    datagrams = [(f[:-4], read(os.path.join(VECTORS, f))) for f in listdir(VECTORS, ".bin")]
    torrents = []
    for f in listdir(TORRENTS, ".torrent"):
        b = read(os.path.join(TORRENTS, f))
        if len(b) <= MAX_TORRENT:
            torrents.append((f[:-8], b))
        else:
            print("skipping %s (%d bytes)" % (f, len(b)), file=sys.stderr)
    captures = {f[:-4]: read(os.path.join(CAPTURES, f)) for f in listdir(CAPTURES, ".bin")}

    # krpc_decode: the datagrams as they went over the wire.
    for name, d in datagrams:
        seeds["krpc_decode"][name + ".bin"] = d

    # bencode_decode: datagrams, whole .torrent files, and libtorrent's BEP 10 handshakes.
    for name, d in datagrams:
        seeds["bencode_decode"]["dgram_" + name + ".bin"] = d
    for name, b in torrents:
        seeds["bencode_decode"]["torrent_" + name + ".torrent"] = b
    for name, stream in sorted(captures.items()):
        if name.startswith("lt_"):
            for mid, payload in frames(stream[HANDSHAKE_LEN:]):
                if mid == 20 and payload[:1] == b"\x00":
                    seeds["bencode_decode"]["ext_handshake_" + name + ".bin"] = payload[1:]

    # peer_wire_info: the raw `info` value of each torrent (exact bytes, not re-encoded).
    for name, b in torrents:
        seeds["peer_wire_info"]["info_" + name + ".bin"] = dict_value_raw(b, b"info")

    # dht_node: chunks of [source selector, time step (x 50 ms), u16 BE length, payload].
    def chunk(sel, step, payload):
        assert len(payload) < 1500
        return bytes([sel, step]) + struct.pack(">H", len(payload)) + payload

    for i, (name, d) in enumerate(datagrams):
        seeds["dht_node"]["one_" + name + ".bin"] = chunk(i, i % 3, d)
    by_name = dict(datagrams)
    queries = [d for n, d in datagrams if n.endswith("_query")]
    responses = [d for n, d in datagrams if not n.endswith("_query")]
    # every query libtorrent sent or answered, from 8 sources, 50 ms apart
    seeds["dht_node"]["seq_queries.bin"] = b"".join(
        chunk(i, 1, d) for i, d in enumerate(queries))
    # a whole exchange interleaved, as one source would see it: query, reply, query, ...
    seeds["dht_node"]["seq_exchange.bin"] = b"".join(
        chunk(3, 2, d) for q, r in zip(queries, responses) for d in (q, r))
    # get_peers, then announce_peer from the same source 1 s later, then from another port
    seeds["dht_node"]["seq_get_peers_announce.bin"] = (
        chunk(5, 0, by_name["get_peers_query"])
        + chunk(5, 20, by_name["announce_peer_query"])
        + chunk(5 + 8, 20, by_name["announce_peer_implied_port_query"])
        + chunk(2, 20, by_name["get_peers_query"]))
    # BEP 51 from several sources, then time passing (empty chunks of 12.75 s) past the
    # token rotation (5 min) and a query again
    seeds["dht_node"]["seq_sample_infohashes_time.bin"] = (
        b"".join(chunk(s, 1, by_name["lt_sent_sample_infohashes_query"]) for s in range(8))
        + b"".join(chunk(0, 255, b"") for _ in range(30))
        + chunk(1, 0, by_name["sample_infohashes_query"]))
    # one source flooding pings (more than the 100-per-10 s incoming budget)
    seeds["dht_node"]["seq_ping_flood.bin"] = b"".join(
        chunk(6, 0, by_name["ping_query"]) for _ in range(110))
    # the same node id from IPv4 and IPv6 sources, and replies nobody asked for
    seeds["dht_node"]["seq_v4_v6_unsolicited.bin"] = b"".join(
        chunk(s, 1, by_name[n]) for s, n in [
            (0, "find_node_query"), (6, "find_node_want_n4_n6_query"),
            (7, "find_node_want_n4_n6_query"), (1, "find_node_response"),
            (6, "find_node_want_n4_n6_response"), (2, "get_peers_response_values"),
            (3, "sample_infohashes_response"), (4, "error_response")])

    # peer_wire_frame (see fuzz_targets/peer_wire_frame.rs): the input goes (1) through
    # parse_frame from offset 0, (2) into a fresh session keyed on [7; 20], (3) into a
    # session past both handshakes whose peer advertised ut_metadata 1, metadata_size 40000.
    for name, stream in sorted(captures.items()):
        side, torrent = name.split("_", 1)
        if side == "lt":
            # libtorrent's side, handshake re-keyed: the fresh session fetches every piece
            # (and fails the hash check at the end, as the key is not the real info-hash)
            seeds["peer_wire_frame"]["lt_session_" + torrent + ".bin"] = with_key(stream)
            # the frames alone: parse_frame reads them all; the ready session gets data
            # with a total_size other than its 40,000
            seeds["peer_wire_frame"]["lt_frames_" + torrent + ".bin"] = stream[HANDSHAKE_LEN:]
        elif torrent in ("single_v1", "big_v1"):
            # our side: extended handshake and ut_metadata requests (to id 2, which is also
            # our own id, so the ready session answers each with a reject)
            seeds["peer_wire_frame"]["es_frames_" + torrent + ".bin"] = stream[HANDSHAKE_LEN:]
    # libtorrent's data messages for big_v1's info dict, re-labelled for a 40,000-byte
    # metadata as the ready session expects: it assembles all 3 pieces (hash mismatch)
    big = captures["lt_big_v1"]
    data = {}
    for mid, payload in frames(big[HANDSHAKE_LEN:]):
        if mid == 20 and payload[0] == OUR_UT_METADATA:
            d, end = bdecode(payload, 1)
            if d[b"msg_type"] == 1:
                data[d[b"piece"]] = payload[end:]
    info = b"".join(data[i] for i in sorted(data))[:READY_METADATA_SIZE]
    ready = b""
    for piece in (2, 0, 1):  # out of order, as a peer may answer
        body = info[piece * PIECE:(piece + 1) * PIECE]
        head = bencode({b"msg_type": 1, b"piece": piece, b"total_size": READY_METADATA_SIZE})
        ready += ext(OUR_UT_METADATA, head + body)
    seeds["peer_wire_frame"]["ready_data_40000.bin"] = ready
    # the plain BEP 3 messages a real peer interleaves (libtorrent sent none of them to a
    # metadata-only connection), after libtorrent's re-keyed handshake and ext handshake
    lt_single = with_key(captures["lt_single_v1"])
    ext_hs = [p for m, p in frames(lt_single[HANDSHAKE_LEN:]) if m == 20 and p[0] == 0][0]
    bep3 = (b"\0\0\0\0" + frame(0) + frame(1) + frame(2) + frame(3)
            + frame(4, struct.pack(">I", 5)) + frame(5, b"\xff\xff\xc0")
            + frame(6, struct.pack(">III", 1, 0, 16384)) + frame(8, struct.pack(">III", 1, 0, 16384))
            + frame(9, struct.pack(">H", 6881)) + frame(14) + frame(15))
    seeds["peer_wire_frame"]["bep3_messages.bin"] = (
        lt_single[:HANDSHAKE_LEN] + frame(20, ext_hs) + bep3)

    # mse_initiator: a first byte choosing where the input is split in two deliveries
    # (x 8 bytes), then what a responder sends the target's initiator.
    seeds["mse_initiator"]["rc4_no_pads.bin"] = b"\x05" + mse_responder(2, b"", b"", b"")
    seeds["mse_initiator"]["rc4_pads_payload.bin"] = b"\x0d" + mse_responder(
        2, bytes(range(200)), b"\xaa" * 37, lt_single[:HANDSHAKE_LEN])
    seeds["mse_initiator"]["plaintext_after.bin"] = b"\x30" + mse_responder(
        1, b"\x55" * 512, b"", lt_single[:HANDSHAKE_LEN])

    total = 0
    for t in TARGETS:
        d = os.path.join(HERE, t)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, b in sorted(seeds[t].items()):
            assert re.fullmatch(r"[A-Za-z0-9_.]+", name), name
            with open(os.path.join(d, name), "wb") as f:
                f.write(b)
        size = sum(len(b) for b in seeds[t].values())
        total += size
        print("%-16s %3d seeds, %8d bytes" % (t, len(seeds[t]), size))
    print("%-16s %3s        %8d bytes" % ("total", "", total))


if __name__ == "__main__":
    main()
