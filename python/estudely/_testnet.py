"""A DHT of our own nodes on loopback, with synthetic torrents and their seeders:
``estudely testnet``, run in this process, to crawl with no network at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from . import _native

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from .types import TestnetOptions


class Testnet:
    """A running testnet: :attr:`bootstrap` to crawl from, :attr:`manifest` for what a
    perfect crawl finds. Stopped by :meth:`close` or at the end of its ``with`` block."""

    def __init__(self, **options: Unpack[TestnetOptions]) -> None:
        self._tmp: Optional[str] = None
        path = options.get("manifest")
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="estudely-testnet-")
            path = os.path.join(self._tmp, "testnet.json")
            options["manifest"] = path
        manifest_path = os.fspath(path)
        try:
            self._task = _native.testnet(**options)
            first = next(self._task, None)
            if first is None or not first.startswith("bootstrap "):
                self._task.close()  # raises the reason it ended, if it failed
                raise _native.EstudelyError(f"testnet ended before it was ready: {first!r}")
            with open(manifest_path, encoding="utf-8") as f:
                manifest: dict[str, Any] = json.load(f)
        except BaseException:
            self._cleanup()
            raise
        self.bootstrap: str = first.split(" ", 1)[1]
        """Node 0's address, ``IP:PORT``: give it to ``bootstrap=[...]``."""
        self.manifest = manifest
        """The manifest ``estudely testnet`` writes: ``bootstrap``, ``nodes``,
        ``torrents`` (each with ``infohash``, ``kind``, ``peers``, ``name``, ``name_hex``,
        ``file_count``, ``total_bytes``, ``piece_length``) and ``interval``; with
        ``world=N`` its summary instead."""

    @property
    def torrents(self) -> pd.DataFrame:
        """The manifest's torrents, one row each (empty for a ``world``)."""
        rows = self.manifest.get("torrents", [])
        df = pd.DataFrame(rows)
        if "name_hex" in df:
            df["name_bytes"] = [bytes.fromhex(h) for h in df["name_hex"]]
        return df

    def close(self) -> None:
        """Stop the nodes and seeders and wait for them."""
        try:
            self._task.close()
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        torrents = len(self.manifest.get("torrents", []))
        return f"<estudely.Testnet bootstrap={self.bootstrap} torrents={torrents}>"


def testnet(**options: Unpack[TestnetOptions]) -> Testnet:
    """Start ``estudely testnet`` in this process and wait until it is ready.

    Options are the CLI's: ``nodes`` (16), ``torrents`` (32), ``base_ip`` (``"127.0.10"``:
    node ``i`` listens on ``<base_ip>.(i+1)``, the seeders on the next /24), ``interval``,
    ``no_metadata``, ``no_peers``, ``seed``, ``world`` ... The manifest goes to a
    temporary file unless ``manifest`` names one. Use it as a context manager::

        with estudely.testnet(nodes=16, torrents=8, base_ip="127.0.77") as net:
            df = estudely.collect(bootstrap=[net.bootstrap], bind=["127.0.79.1:0"])
    """
    return Testnet(**options)
