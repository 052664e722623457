#!/usr/bin/env python3
"""Regenerate the test torrents in this directory with python3-libtorrent (made with 2.1.1.0).

Content files are deterministic and written to a temporary directory; only the .torrent
files are kept. Prints, per torrent, what libtorrent's torrent_info reports, as a Markdown
table row for README.md (non-pad counts computed from libtorrent's pad-file flags).
"""
import hashlib
import os
import sys
import tempfile

import libtorrent as lt

HERE = os.path.dirname(os.path.abspath(__file__))


def content(size, seed):
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def write_tree(root, files):
    for rel, size in files:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content(size, rel))


def make(out_name, top, files, piece_size, flags):
    """`top` is a single file name when `files` has one entry with rel == top."""
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(tmp, files)
        fs = lt.file_storage()
        lt.add_files(fs, os.path.join(tmp, top))
        ct = lt.create_torrent(fs, piece_size, flags=flags)
        ct.set_creator("estudely test vectors")
        ct.set_creation_date(0)
        lt.set_piece_hashes(ct, tmp)
        data = lt.bencode(ct.generate())
    with open(os.path.join(HERE, out_name), "wb") as f:
        f.write(data)


def make_big_fake():
    """A v1 torrent whose info dict spans several 16 KiB metadata pieces. Piece hashes are
    synthetic (SHA-1 of the piece index); no content exists."""
    fs = lt.file_storage()
    fs.add_file("big/data.bin", 3000 * 16384 + 1000)
    ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
    ct.set_creator("estudely test vectors")
    ct.set_creation_date(0)
    for i in range(ct.num_pieces()):
        ct.set_hash(i, hashlib.sha1(str(i).encode()).digest())
    with open(os.path.join(HERE, "big_v1.torrent"), "wb") as f:
        f.write(lt.bencode(ct.generate()))


def report(name):
    ti = lt.torrent_info(os.path.join(HERE, name))
    fs = ti.files()
    pad = [i for i in range(fs.num_files()) if fs.file_flags(i) & lt.file_storage.flag_pad_file]
    real = [i for i in range(fs.num_files()) if i not in pad]
    real_bytes = sum(fs.file_size(i) for i in real)
    ih = ti.info_hashes()
    v1 = ih.v1.to_bytes().hex() if ih.has_v1() else "-"
    v2 = ih.v2.to_bytes().hex() if ih.has_v2() else "-"
    print(
        f"| `{name}` | {ti.name()} | {fs.num_files()} | {len(real)} | {ti.total_size()} | "
        f"{real_bytes} | {ti.piece_length()} | {ti.metadata_size()} | {v1} | {v2} |"
    )


def main():
    v1_only = lt.create_torrent.v1_only
    v2_only = lt.create_torrent.v2_only
    hybrid = 0
    make("single_v1.torrent", "hello.txt", [("hello.txt", 100_000)], 16384, v1_only)
    multi = [("multi/a.bin", 40_000), ("multi/sub/b.txt", 1234), ("multi/sub/c.dat", 70_001)]
    make("multi_v1.torrent", "multi", multi, 32768, v1_only)
    mixed = [("mixed/one.bin", 20_000), ("mixed/two/three.bin", 50_000), ("mixed/z.txt", 5)]
    make("hybrid.torrent", "mixed", mixed, 16384, hybrid)
    make("v2_only.torrent", "mixed", mixed, 16384, v2_only)
    uni = [("Ünïcødé 日本語 – test/ファイル.txt", 3333), ("Ünïcødé 日本語 – test/ß.bin", 17_000)]
    make("nonascii_hybrid.torrent", "Ünïcødé 日本語 – test", uni, 16384, hybrid)
    make_big_fake()
    print("| file | lt name | lt num_files | non-pad files | lt total_size | non-pad bytes "
          "| piece_length | metadata_size | v1 info-hash | v2 info-hash |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ["single_v1.torrent", "multi_v1.torrent", "hybrid.torrent",
                 "v2_only.torrent", "nonascii_hybrid.torrent", "big_v1.torrent"]:
        report(name)


if __name__ == "__main__":
    sys.exit(main())
