#!/usr/bin/env python3
"""Real data and v1 .torrent files for seeding by other BitTorrent clients
(transmission-daemon, aria2c) in `tests/metadata_clients.rs`.

    clients.py make DIR

Writes DIR/data/single.bin (300 KB), DIR/data/Ünïcødé multi/ (3 files, one with a
non-ASCII name), and DIR/torrents/{single,multi}.torrent: v1-only, 16 KiB pieces with real
piece hashes, no trackers, private flag unset. Prints one JSON line per torrent as
`lt_seeders.py inspect` describes it, plus "file" (the .torrent path) and "data_dir"
(the directory holding the content, i.e. the client's download dir).
"""
import json
import warnings
import os
import random
import sys

import libtorrent as lt

from lt_seeders import describe

warnings.simplefilter("ignore", DeprecationWarning)  # add_files, create_torrent(fs)


def write(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(size)))


def make_torrent(content, out):
    fs = lt.file_storage()
    lt.add_files(fs, content)
    ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
    ct.set_creator("estudely interop")
    lt.set_piece_hashes(ct, os.path.dirname(content))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return describe(lt.torrent_info(out), out)


def make(root):
    data = os.path.join(root, "data")
    tdir = os.path.join(root, "torrents")
    os.makedirs(data, exist_ok=True)
    os.makedirs(tdir, exist_ok=True)
    single = os.path.join(data, "single.bin")
    write(single, 300_000, 1)
    multi = os.path.join(data, "Ünïcødé multi")
    os.makedirs(os.path.join(multi, "sub"), exist_ok=True)
    write(os.path.join(multi, "a.bin"), 40_000, 2)
    write(os.path.join(multi, "sub", "日本語 ファイル.dat"), 70_001, 3)
    write(os.path.join(multi, "z.txt"), 5_555, 4)
    for content, name in ((single, "single"), (multi, "multi")):
        d = make_torrent(content, os.path.join(tdir, name + ".torrent"))
        d["file"] = d.pop("path")
        d["data_dir"] = data
        print(json.dumps(d, ensure_ascii=False), flush=True)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        sys.exit(__doc__)
    make(sys.argv[2])


if __name__ == "__main__":
    main()
