"""Estudely from Python: explore the BitTorrent Mainline DHT into pandas DataFrames.

The ``estudely`` command line's own code runs in this process, on threads of its own (the
interpreter is free while it works), with each command's flags as keyword arguments named
as on the command line (``--max-infohashes`` is ``max_infohashes``; :func:`options` lists
them). Bad values raise ``ValueError`` with the CLI's one-line message, unknown keywords
and values of the wrong kind ``TypeError``, failures :class:`EstudelyError`; Ctrl-C stops
a running command cleanly and raises ``KeyboardInterrupt``.

- :func:`collect`: crawl (BEP 51), find peers, fetch metadata: one DataFrame.
- :func:`crawl`: (infohash, peer) rows as they are found; :func:`fetch_metadata` from them.
- :func:`testnet`: a DHT with seeded torrents on loopback, to crawl with no network.
- :func:`simulate`: coverage of a simulated 10-million-node DHT over virtual time.
- :func:`run`: crawl into a torrent index (SQLite or PostgreSQL), as ``estudely run``.
- :class:`Index`: an index built by :func:`run` (SQLite or PostgreSQL), read in chunks.
- :mod:`estudely.query`, :mod:`estudely.bencode`, :func:`parse_info`: for learning.

Example::

    import estudely

    with estudely.testnet(torrents=8, base_ip="127.0.77") as net:
        df = estudely.collect(bootstrap=[net.bootstrap], bind=["127.0.79.1:0"],
                              max_infohashes=8, rate=200)
    print(df[["name", "total_bytes", "metadata_ok"]])
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import bencode, query
from ._native import EstudelyError, __version__
from ._native import parse_info as _parse_info
from .commands import Crawl, CrawlRow, collect, crawl, fetch_metadata, run, simulate
from .index import Index
from ._testnet import Testnet, testnet

__all__ = [
    "Crawl",
    "CrawlRow",
    "EstudelyError",
    "Index",
    "Testnet",
    "__version__",
    "bencode",
    "collect",
    "crawl",
    "fetch_metadata",
    "options",
    "parse_info",
    "query",
    "run",
    "simulate",
    "testnet",
]


def parse_info(data: bytes) -> dict[str, Any]:
    """What an info dict (the metadata peers send) or a whole ``.torrent`` file says:
    ``infohash`` (the 40-hex DHT key), ``infohash_v2`` (v2 and hybrid), ``name``,
    ``name_bytes``, ``name_hex``, ``version``, ``file_count``, ``total_bytes``,
    ``piece_length``, ``files`` (the first ones: ``path``, ``path_bytes``, ``length``) and
    ``files_truncated``. Malformed input raises ``ValueError``."""
    return _parse_info(bytes(data))


def options(command: str) -> pd.DataFrame:
    """The keyword arguments of a command (``"collect"``, ``"crawl"``, ``"metadata"``,
    ``"run"``, ``"testnet"``, ``"simulate"``, ``"query ping"``, ...), read from the command
    line's own definition: ``name``, ``flag``, ``kind`` (``switch``: a bool; ``one``: a
    value; ``many``: a list), ``value_name``, ``default``, ``choices`` and ``help``.
    ``format`` is set by the package itself."""
    from ._native import flags

    return pd.DataFrame(flags(command))
