"""The crawling commands: :func:`collect`, :func:`crawl`, :func:`fetch_metadata`,
:func:`run` and :func:`simulate`.

Each runs the ``estudely`` command line's own code in this process, on a thread of its own
(the interpreter is free meanwhile), with the command's flags as keyword arguments:
``--max-infohashes 30`` is ``max_infohashes=30``, a repeatable flag such as ``--bootstrap``
takes a list (``bootstrap=["127.0.0.1:6881"]``), a switch such as ``--allow-private`` a bool,
and ``None`` leaves a flag at its default. :func:`estudely.options` lists them. Values are
checked exactly as on the command line: a value the CLI refuses raises ``ValueError`` with
its message, an unknown keyword or a value of the wrong kind ``TypeError``; a failure while
running raises :class:`estudely.EstudelyError`.

Ctrl-C (``KeyboardInterrupt``) stops a running command as it stops the CLI, waits for its
thread to end, then raises. Progress and the closing summary go to stderr, as on the
command line.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple, Optional, Union

import pandas as pd

from . import _frames, _native

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from .types import (
        CollectOptions,
        CrawlOptions,
        MetadataOptions,
        RunOptions,
        SimulateOptions,
    )


def collect(**options: Unpack[CollectOptions]) -> pd.DataFrame:
    """Crawl, find peers and fetch metadata in one run: ``estudely collect``.

    Returns one row per (infohash, peer considered), as the CLI's CSV: ``infohash``,
    ``name``, ``file_count``, ``total_bytes``, ``piece_length``, ``peer_ip``,
    ``peer_port``, ``metadata_ok``; then ``infohash_v2``, ``name_hex``, ``version``,
    ``seeds_estimate``, ``peers_estimate`` (its JSON lines' fields) and ``name_bytes``
    (the name's exact bytes; ``name`` is for display). A torrent without metadata has
    ``metadata_ok`` False, an empty name and zeros; one without peers one row with
    ``peer_ip`` and ``peer_port`` missing.

    The defaults are the CLI's: 20 infohashes, 60 s, 25 queries/s, from the public
    routers. Against a loopback testnet::

        with estudely.testnet(torrents=8, base_ip="127.0.77") as net:
            df = estudely.collect(bootstrap=[net.bootstrap], bind=["127.0.79.1:0"],
                                  max_infohashes=8, rate=200)
    """
    task = _native.collect(**options)
    try:
        rows = [json.loads(line) for line in task]
    finally:
        task.close()
    return _frames.from_records(_frames.COLLECT, rows)


class CrawlRow(NamedTuple):
    """One (infohash, peer) found by :func:`crawl`, as ``estudely crawl`` writes it."""

    infohash: str
    """40 hex digits."""
    peer_ip: str
    """The peer's IP address (IPv6 without brackets)."""
    peer_port: int
    """The peer's port."""
    source: Optional[str]
    """The node that sampled the infohash (or announced it to us), ``IP:PORT``, if known."""


class Crawl:
    """A running :func:`crawl`: iterate over it for its rows (:class:`CrawlRow`) as they are
    found; :meth:`to_frame` waits for the end and returns every row. Use it in a ``with``
    block, or call :meth:`close`, so that its thread ends with it."""

    def __init__(self, task: _native.Task) -> None:
        self._task = task
        self.rows: list[CrawlRow] = []
        """Every row read so far."""

    def __iter__(self) -> Iterator[CrawlRow]:
        return self

    def __next__(self) -> CrawlRow:
        row = CrawlRow(**json.loads(next(self._task)))
        self.rows.append(row)
        return row

    def stop(self) -> None:
        """End the crawl early, as Ctrl-C ends ``estudely crawl``; the rows it still writes
        can be read on."""
        self._task.stop()

    def close(self) -> None:
        """Stop the crawl (if still running) and wait for its thread; unread rows are
        dropped."""
        self._task.close()

    @property
    def running(self) -> bool:
        """Whether the crawl is still running."""
        return self._task.running

    def to_frame(self) -> pd.DataFrame:
        """Read the crawl to its end and return all its rows: ``infohash``, ``peer_ip``,
        ``peer_port``, ``source``."""
        for _ in self:
            pass
        return _frames.from_records(_frames.CRAWL, (r._asdict() for r in self.rows))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def crawl(**options: Unpack[CrawlOptions]) -> Crawl:
    """Sample infohashes (BEP 51) and find their peers: ``estudely crawl``, started at once.

    Returns a :class:`Crawl`, an iterator of :class:`CrawlRow` as they are found.
    ``peers_file`` appends the rows to a CSV file as the CLI does; without it no file is
    written (the CLI's default is ``peers.csv``)::

        with estudely.crawl(bootstrap=[net.bootstrap], max_infohashes=5) as c:
            for row in c:
                print(row.infohash, row.peer_ip, row.peer_port)
    """
    return Crawl(_native.crawl(**options))


PeerRows = Union[
    "str",
    "os.PathLike[str]",
    pd.DataFrame,
    Crawl,
    Iterable[Union[CrawlRow, "tuple[str, str, int]", "dict[str, Any]"]],
]


def _peers_csv(peers: Any) -> bytes:
    """``peers`` as the CSV ``estudely crawl`` writes: ``infohash,peer_ip,peer_port``."""
    if isinstance(peers, pd.DataFrame):
        missing = {"infohash", "peer_ip", "peer_port"} - set(peers.columns)
        if missing:
            raise ValueError(f"peers has no column {', '.join(sorted(missing))}")
        rows: Iterable[Any] = peers[["infohash", "peer_ip", "peer_port"]].itertuples(
            index=False
        )
    elif isinstance(peers, Crawl):
        rows = peers.to_frame()[["infohash", "peer_ip", "peer_port"]].itertuples(
            index=False
        )
    else:
        rows = peers
    lines = ["infohash,peer_ip,peer_port"]
    for row in rows:
        if isinstance(row, dict):
            row = (row["infohash"], row["peer_ip"], row["peer_port"])
        if not isinstance(row, tuple) or len(row) < 3:
            raise TypeError(
                "each peer must be (infohash, peer_ip, peer_port), a CrawlRow or a dict, "
                f"not {row!r}"
            )
        infohash, ip, port = row[0], row[1], row[2]
        lines.append(f"{infohash},{ip},{int(port)}")
    return ("\n".join(lines) + "\n").encode()


def fetch_metadata(peers: PeerRows, **options: Unpack[MetadataOptions]) -> pd.DataFrame:
    """Fetch the metadata (BEP 9) of every infohash from its peers: ``estudely metadata``.

    ``peers`` is a peers CSV file (a path, as the CLI takes it), or rows: a DataFrame with
    ``infohash``, ``peer_ip`` and ``peer_port`` columns (what :meth:`Crawl.to_frame`
    returns), a :class:`Crawl`, or an iterable of :class:`CrawlRow`, ``(infohash, ip,
    port)`` tuples or dicts. Peers at private and loopback addresses are refused unless
    ``allow_private=True``, as on the command line.

    Returns one row per torrent obtained, as the CLI's CSV: ``infohash``, ``name``,
    ``file_count``, ``total_bytes``, ``piece_length``; then its JSON lines' fields
    (``infohash_v2``, ``name_hex``, ``version``, ``metadata_size``, ``peer``, ``client``,
    ``transport``, ``failed``) and ``name_bytes``.
    """
    if isinstance(peers, (str, os.PathLike)):
        task = _native.metadata(file=os.fspath(peers), **options)
    else:
        task = _native.metadata(csv=_peers_csv(peers), **options)
    try:
        rows = [json.loads(line) for line in task]
    finally:
        task.close()
    return _frames.from_records(_frames.METADATA, rows)


def run(**options: Unpack[RunOptions]) -> dict[str, Any]:
    """Crawl and build a torrent index: ``estudely run``, until ``overall_timeout`` seconds
    have passed (the default, 0, runs until Ctrl-C).

    Every torrent fetched goes into the index ``db`` (an SQLite file, ``"sqlite:PATH"``,
    or ``"postgres://..."``), each once, with its files, peers and classification; read it
    with :class:`estudely.Index`. Ctrl-C stops it as it stops the CLI: what is known is
    committed, then ``KeyboardInterrupt`` is raised (every committed row stays, and a later
    ``run`` on the same index carries on).

    Returns the figures of the CLI's summary line as a dict: ``infohashes`` (found),
    ``stored``, ``known`` (already in the index, or fetched by another crawler),
    ``filtered``, ``blocklisted``, ``fetch_failed``, ``no_peers``, ``dht_queries``,
    ``transactions`` (committed), ``interrupted`` and ``seconds``. Against a loopback
    testnet::

        with estudely.testnet(torrents=8, base_ip="127.0.77") as net:
            summary = estudely.run(db="sqlite:index.sqlite", bootstrap=[net.bootstrap],
                                   bind=["127.0.79.1:0"], rate=200, overall_timeout=20)
        torrents = estudely.Index("sqlite:index.sqlite").torrents()
    """
    task = _native.run(**options)
    try:
        lines = list(task)
    finally:
        task.close()
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


def simulate(**options: Unpack[SimulateOptions]) -> pd.DataFrame:
    """Crawl a simulated DHT in virtual time: ``estudely simulate --format csv``.

    Returns the coverage table, a row every ``every`` virtual minutes: ``hours``,
    ``queries``, ``samples_sent``, ``samples_answered``, ``found``, ``coverage_pct``,
    ``nodes_known``, ``nodes_rested``, ``rss_mb``, ``wall_s``. The summary lines the CLI
    prints with ``#`` are in ``df.attrs["summary"]``. The same options and ``seed`` give
    the same figures (memory and wall time aside). Ctrl-C stops it within a step of its
virtual clock, however far off its next row is, and raises ``KeyboardInterrupt``.
    """
    task = _native.simulate(**options)
    try:
        lines = list(task)
    finally:
        task.close()
    summary = [line[1:].strip() for line in lines if line.startswith("#")]
    table = [line for line in lines if line and not line.startswith("#")]
    header, body = table[0].split(","), [line.split(",") for line in table[1:]]
    df = pd.DataFrame(body, columns=header)
    floats = {"hours", "coverage_pct", "wall_s"}
    for column in header:
        df[column] = df[column].astype("float64" if column in floats else "int64")
    df.attrs["summary"] = summary
    return df
