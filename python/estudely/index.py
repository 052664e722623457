"""An index built by ``estudely run``, read from Python: :class:`Index`."""

from __future__ import annotations

import datetime as _dt
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

import pandas as pd

from . import _arrow, _frames, _native

if TYPE_CHECKING:
    import pyarrow
    from typing_extensions import Self

Since = Union[int, str, _dt.date, _dt.datetime, pd.Timestamp, None]


def _since(since: Since) -> Union[int, str, None]:
    """Unix seconds, or the text ``export --since`` takes, for the native side."""
    if since is None or isinstance(since, (int, str)):
        return since
    if isinstance(since, _dt.datetime):
        if since.tzinfo is None:
            since = since.replace(tzinfo=_dt.timezone.utc)
        return int(since.timestamp())
    if isinstance(since, _dt.date):
        return int(_dt.datetime(since.year, since.month, since.day, tzinfo=_dt.timezone.utc).timestamp())
    raise TypeError(f"since must be an int, a str, a date or a datetime, not {type(since).__name__}")


# Threads reading the index at once for :meth:`Index.torrents` and :meth:`Index.to_arrow`
# (one per core, at most 4): the export is CPU-bound, and its thread was the critical path
# (BENCHMARKS.md, "Python").
_PARTS = max(1, min(4, os.cpu_count() or 1))


def _pyarrow() -> Any:
    """pyarrow, or None where it is not installed (then rows come as Python objects)."""
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


class Index:
    """A torrent index, opened read-only (``estudely run`` may write to it meanwhile).

    ``url`` is what ``--db`` takes: ``sqlite:PATH``, a plain path, or ``postgres://...``.
    A missing SQLite file raises ``ValueError`` (never creates an index). Every method
    returns a DataFrame; :meth:`iter_torrents` reads the index in chunks of ``chunk_size``
    torrents, on a connection of its own, so that no more than two chunks are in memory
    while reading. :meth:`torrents` and :meth:`to_arrow`, which keep every row anyway,
    split an SQLite index into ranges read at once by a thread each (one per core, at
    most 4), each on a connection of its own; with ``estudely run`` writing meanwhile, each
    range reads the index as it was when that range started.
    """

    def __init__(self, url: Union[str, "os.PathLike[str]"]) -> None:
        self._index = _native.Index(os.fspath(url))

    @property
    def url(self) -> str:
        """The ``url`` it was opened with."""
        return self._index.url

    def search(
        self,
        query: str,
        limit: int = 20,
        offset: int = 0,
        sort: str = "relevance",
        category: str | None = None,
    ) -> pd.DataFrame:
        """Search over names and file paths, as ``estudely search``: ``query`` is in its
        query language (words, ``"a phrase"``, ``-word``, ``category:tv``, ``size:>1GB``,
        ``after:2026-01-01``, ``files:>10``; a field it cannot read raises ``ValueError``),
        ``sort`` ``"relevance"``, ``"size"``, ``"discovered"`` or ``"seeders"``,
        ``category`` one of ``movie``, ``tv``, ... (as ``--category``). One row per hit:
        ``infohash``, ``infohash_v2``, ``name``, ``name_hex``, ``version``, ``file_count``,
        ``total_bytes``, ``piece_length``, ``private``, ``discovered``, ``last_seen`` (unix
        seconds), ``source``, ``seeds_estimate``, ``peers_estimate``, ``estimated_at``,
        ``category``, ``release``, ``matched_file`` (the stored path that explains the hit
        when the name does not, else None), ``name_bytes``."""
        extra = {} if category is None else {"category": category}
        columns = self._index.search(query, limit=limit, offset=offset, sort=sort, **extra)
        return _frames.frame(_frames.HITS, columns)

    def _batches(self, since: Since, chunk_size: int) -> Iterator[Any]:
        """The torrents as pyarrow RecordBatches of at most ``chunk_size`` rows (at least
        one, maybe empty, so that even no torrent has its schema)."""
        pa = _pyarrow()
        task = self._index.torrent_columns(since=_since(since), chunk_size=chunk_size)
        try:
            for chunk in task:
                yield _arrow.batch(pa, chunk)
        finally:
            task.close()

    def _all_batches(self, since: Since, chunk_size: int) -> list[Any]:
        """Every batch of :meth:`_batches`, in order, read by up to :data:`_PARTS`
        threads at once (each a range of the index, on a connection of its own; their
        chunks arrive interleaved and are put back in order here)."""
        pa = _pyarrow()
        task = self._index.torrent_columns(
            since=_since(since), chunk_size=chunk_size, parts=_PARTS
        )
        parts: list[tuple[int, Any]] = []
        try:
            for chunk in task:
                parts.append((chunk["part"], _arrow.batch(pa, chunk)))
        finally:
            task.close()
        # Stable: a part's chunks stay in the order they came.
        parts.sort(key=lambda p: p[0])
        return [b for _, b in parts]

    def iter_torrents(
        self, since: Since = None, chunk_size: int = 65_536
    ) -> Iterator[pd.DataFrame]:
        """The torrents discovered at or after ``since`` (unix seconds, a date or datetime
        (UTC when naive), or text as ``export --since`` takes it), oldest first, as
        DataFrames of at most ``chunk_size`` rows. Each row holds the fields ``estudely
        export --format jsonl`` writes: ``infohash``, ``infohash_v2``, ``name``,
        ``name_hex``, ``version``, ``file_count``, ``total_bytes``, ``piece_length``,
        ``metadata_ok``, ``private``, ``discovered``, ``last_seen``, ``source``,
        ``seeds_estimate``, ``peers_estimate``, ``estimated_at``, ``category`` and
        ``release`` (where the index classifies torrents), ``files`` (a list of ``{path,
        length}`` dicts, with ``path_hex`` where ``path`` is not exact), ``files_omitted``,
        ``peers`` (``"IP:PORT"`` strings); then ``name_bytes``.

        Where pyarrow is installed, ``files``, ``peers`` and ``release`` are Arrow columns
        (``pd.ArrowDtype``), built with no Python object per row, file or peer: an element
        read from them is a list or dict as above, with every field present (``None``
        where the JSON view leaves one out: ``path_hex`` of an exact path, the release
        fields a name does not have). Without pyarrow they are Python objects, as the
        JSON view has them, built row by row (much slower on a big index)."""
        pa = _pyarrow()
        if pa is not None:
            for batch in self._batches(since, chunk_size):
                if batch.num_rows:
                    yield _arrow.frame(pa, batch)
            return
        task = self._index.torrent_chunks(since=_since(since), chunk_size=chunk_size)
        try:
            for columns in task:
                yield _frames.frame(_frames.TORRENTS, columns)
        finally:
            task.close()

    def torrents(self, since: Since = None, chunk_size: int = 65_536) -> pd.DataFrame:
        """Every torrent (discovered at or after ``since``) in one DataFrame: the rows of
        :meth:`iter_torrents`, read a chunk at a time (with pyarrow: gathered as Arrow
        batches, then made a DataFrame once)."""
        pa = _pyarrow()
        if pa is not None:
            return _arrow.frame(pa, pa.Table.from_batches(self._all_batches(since, chunk_size)))
        chunks = list(self.iter_torrents(since, chunk_size))
        if not chunks:
            return _frames.frame(_frames.TORRENTS, {})
        return pd.concat(chunks, ignore_index=True)

    def to_arrow(self, since: Since = None, chunk_size: int = 65_536) -> "pyarrow.Table":
        """:meth:`torrents` as a pyarrow Table, built chunk by chunk (needs ``pyarrow``:
        ``pip install './python[arrow]'``): text as ``large_string``, whole numbers
        ``int64``, ``files`` a ``large_list`` of ``struct<path, path_hex, length>``,
        ``peers`` a ``large_list`` of ``large_string``, ``release`` a struct of its
        fields, ``name_bytes`` ``large_binary``."""
        pa = _pyarrow()
        if pa is None:
            raise ImportError("Index.to_arrow() needs pyarrow: pip install pyarrow")
        return pa.Table.from_batches(self._all_batches(since, chunk_size))

    def torrent(self, infohash: str) -> Optional[dict[str, Any]]:
        """One torrent as ``export --format jsonl`` writes it (with its stored files, no
        peers), or ``None`` when the index does not hold it. ``infohash``: 40 or 64 hex
        digits, or a magnet link (``ValueError`` otherwise)."""
        return self._index.torrent(infohash)

    def files(self, infohash: str) -> pd.DataFrame:
        """The stored files of one torrent: ``infohash``, ``path`` (components joined with
        ``/``, for display), ``length``, ``path_hex`` (the raw components in hex where
        ``path`` is not exact, else ``None``). ``KeyError`` when the index does not hold
        it; ``df.attrs["files_omitted"]`` counts files beyond the stored ones."""
        torrent = self.torrent(infohash)
        if torrent is None:
            raise KeyError(f"{infohash} is not in the index")
        files = torrent["files"]
        df = _frames.frame(
            _frames.FILES,
            {
                "infohash": [torrent["infohash"]] * len(files),
                "path": [f["path"] for f in files],
                "length": [f["length"] for f in files],
                "path_hex": [f.get("path_hex") for f in files],
            },
        )
        df.attrs["files_omitted"] = torrent["files_omitted"]
        return df

    def stats(self) -> pd.DataFrame:
        """What ``estudely stats`` counts, one row per count: ``group`` (``totals``,
        ``by_version``, ``by_source``, ``by_day``, ``counters``), ``key`` and ``count``;
        e.g. ``s.set_index(["group", "key"])["count"]["totals", "torrents"]``."""
        stats = self._index.stats()
        rows = []
        for key, value in stats.items():
            if isinstance(value, dict):
                rows += [(key, k, v) for k, v in value.items()]
            else:
                rows.append(("totals", key, value))
        return _frames.frame(
            _frames.STATS,
            {
                "group": [r[0] for r in rows],
                "key": [r[1] for r in rows],
                "count": [r[2] for r in rows],
            },
        )

    def close(self) -> None:
        """Close the connection."""
        self._index.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<estudely.Index {self.url!r}>"
