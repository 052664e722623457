"""The keyword arguments of each command, for type checkers and editors.

Each is the command's flag of the same name (``--max-infohashes`` is ``max_infohashes``),
checked at run time by the command line's own parser; the defaults are the CLI's
(:func:`estudely.options` lists them with their help). Numbers may also be given as
the text the CLI takes (``fetch_memory="64M"``, ``overall_timeout="90"``); paths as ``str``
or ``os.PathLike``; ``None`` means the default. ``format`` is not among them: the package
sets it. A test (``python/tests/test_arguments.py``) checks these lists against the CLI.
"""

from __future__ import annotations

import os
from typing import List, Optional, TypedDict, Union

Seconds = Union[float, int, str]
Bytes = Union[int, str]
Path = Union[str, "os.PathLike[str]"]


class _CrawlCommon(TypedDict, total=False):
    max_infohashes: Optional[int]
    """Stop sampling after this many distinct infohashes (0: no limit). Default 20."""
    peers_per_infohash: Optional[int]
    """Distinct peers kept per infohash. Default 20."""
    overall_timeout: Optional[Seconds]
    """Stop after this many seconds and return what is known (0: no limit). Default 60."""
    rate: Optional[float]
    """Global limit on DHT queries sent, per second. Default 25."""
    bootstrap: Optional[List[str]]
    """Nodes to start from, ``"HOST:PORT"`` each. Default: the public routers."""
    bind: Optional[List[str]]
    """Local addresses to crawl from, at most one IPv4 and one IPv6. Default 0.0.0.0:0."""
    allow_private: Optional[bool]
    """Also follow private, loopback, link-local and CGNAT addresses learned from the
    network."""
    no_harvest: Optional[bool]
    """Do not report infohashes announced to our node."""
    state: Optional[Path]
    """Warm-start file: good nodes saved at the end, started from next time."""
    shard: Optional[str]
    """``"K/N"``: sample only the K-th of N slices of the node-id space."""
    metrics: Optional[str]
    """``"IP:PORT"`` to serve Prometheus metrics on while it runs."""


class _FetchCommon(TypedDict, total=False):
    metadata_peer_attempts: Optional[int]
    """Peers tried per infohash, in turn, until one gives the metadata. Default 5."""
    concurrency: Optional[int]
    """Metadata fetches (connections) at once. Default 32."""
    transport: Optional[str]
    """``"tcp"``, ``"utp"`` or ``"both"`` (default)."""
    save_torrents: Optional[Path]
    """Write each verified torrent as DIR/<infohash>.torrent."""
    encryption: Optional[str]
    """Message Stream Encryption: ``"off"``, ``"prefer"`` (default) or ``"required"``."""
    fetch_memory: Optional[Bytes]
    """Most metadata in flight, all fetches together (bytes, or ``"64M"``). Default 64M."""


class CollectOptions(_CrawlCommon, _FetchCommon, total=False):
    """Keyword arguments of :func:`estudely.collect` (``estudely collect``)."""

    full_peer_searches: Optional[bool]
    """Search every infohash on to ``peers_per_infohash`` peers, with BEP 33 scrapes."""


class CrawlOptions(_CrawlCommon, total=False):
    """Keyword arguments of :func:`estudely.crawl` (``estudely crawl``)."""

    peers_file: Optional[Path]
    """Append the rows to this CSV file too (the Python default: no file)."""


class MetadataOptions(_FetchCommon, total=False):
    """Keyword arguments of :func:`estudely.fetch_metadata` (``estudely metadata``)."""

    peers_per_infohash: Optional[int]
    """Peers kept per infohash (the first distinct ones). Default 20."""
    overall_timeout: Optional[Seconds]
    """Stop after this many seconds with what was obtained (0: no limit). Default 300."""
    max_metadata_size: Optional[int]
    """Largest info dict accepted, in bytes."""
    connect_timeout: Optional[Seconds]
    """Seconds allowed for each connect. Default 5."""
    handshake_timeout: Optional[Seconds]
    """Seconds allowed, once connected, for the peer's handshakes. Default 10."""
    piece_timeout: Optional[Seconds]
    """Seconds allowed for each next metadata piece. Default 10."""
    attempt_timeout: Optional[Seconds]
    """Seconds allowed for one attempt at one peer. Default 30."""
    allow_private: Optional[bool]
    """Also connect to peers at private, loopback, link-local and CGNAT addresses."""
    metrics: Optional[str]
    """``"IP:PORT"`` to serve Prometheus metrics on while it runs."""


class RunOptions(_FetchCommon, total=False):
    """Keyword arguments of :func:`estudely.run` (``estudely run``)."""

    db: Optional[str]
    """The index: an SQLite file (``PATH`` or ``"sqlite:PATH"``) or a PostgreSQL URL
    (``"postgres://..."``, or ``"postgres:"`` and libpq settings). Default
    ``estudely.sqlite`` in the working directory."""
    bootstrap: Optional[List[str]]
    """Nodes to start from, ``"HOST:PORT"`` each, after the nodes saved in the index.
    Default: the public routers."""
    bind: Optional[List[str]]
    """Local addresses to crawl from, at most one IPv4 and one IPv6. Default 0.0.0.0:0."""
    rate: Optional[float]
    """Global limit on DHT queries sent, per second. Default 25."""
    peers_per_infohash: Optional[int]
    """Distinct peers kept per infohash. Default 20."""
    full_peer_searches: Optional[bool]
    """Search every infohash on to ``peers_per_infohash`` peers, with BEP 33 scrapes."""
    overall_timeout: Optional[Seconds]
    """Stop after this many seconds (0, the default: until Ctrl-C)."""
    allow_private: Optional[bool]
    """Also follow private, loopback, link-local and CGNAT addresses learned from the
    network."""
    no_harvest: Optional[bool]
    """Do not take infohashes announced to our node as discoveries."""
    shard: Optional[str]
    """``"K/N"``: sample only the K-th of N slices of the node-id space."""
    min_size: Optional[Bytes]
    """Keep only torrents of at least this total size (bytes, or ``"700MB"``)."""
    max_size: Optional[Bytes]
    """Keep only torrents of at most this total size."""
    include: Optional[str]
    """Keep only torrents whose name matches this regex."""
    exclude: Optional[str]
    """Drop torrents whose name matches this regex."""
    blocklist: Optional[Path]
    """A file of infohashes never searched, fetched or stored."""
    lease: Optional[Seconds]
    """How long a claim on an infohash lasts, seconds. Default 300."""
    owner: Optional[str]
    """This crawler's name in the index's leases. Default ``host:pid:random``."""
    max_sightings: Optional[int]
    """Sightings (peer or node addresses) kept per infohash. Default 32."""
    no_peer_addresses: Optional[bool]
    """Store no peer or node address at all, only counts."""
    max_torrents: Optional[int]
    """Keep at most this many torrents, pruning the oldest."""
    max_db_size: Optional[Bytes]
    """Keep the index's used size under this size, pruning the oldest."""
    classify_rules: Optional[Path]
    """Classification rules (TOML) tried before the built-in ones."""
    metrics: Optional[str]
    """``"IP:PORT"`` to serve Prometheus metrics on while it runs."""
    serve: Optional[str]
    """``"IP:PORT"`` to serve the web UI and API on while it runs."""
    auth: Optional[str]
    """``"USER:PASS"``: HTTP basic authentication for the web UI (with ``serve``)."""
    db_connections: Optional[int]
    """Most index connections the web UI opens at once. Default 4."""
    api_key: Optional[List[str]]
    """API keys of the web UI's Torznab, RSS and JSON API (with ``serve``)."""
    api_key_file: Optional[Path]
    """A file of API keys, one per line."""
    rescrape_rate: Optional[int]
    """Re-scrapes of stored torrents' swarm estimates a minute (0: never). Default 20."""
    rescrape_after: Optional[Seconds]
    """Re-scrape a torrent at most once in this many seconds. Default 21600."""


class TestnetOptions(TypedDict, total=False):
    """Keyword arguments of :func:`estudely.testnet` (``estudely testnet``)."""

    nodes: Optional[int]
    """Nodes to run, one per loopback address. Default 16 (2,000 with ``world``)."""
    world: Optional[int]
    """Run an endless world of N procedural torrents instead of announced ones."""
    seeders: Optional[int]
    """With ``world``: seeder listeners serving its metadata. Default 32."""
    samples: Optional[int]
    """With ``world``: infohashes per sample_infohashes answer. Default 20."""
    status: Optional[Path]
    """With ``world``: write its counters as JSON to this file every second."""
    served_log: Optional[Path]
    """With ``world``: append each served infohash to this file."""
    torrents: Optional[int]
    """Synthetic torrents to announce, each served by its seeder. Default 32."""
    no_metadata: Optional[int]
    """More torrents, announced for a peer that does not serve their metadata."""
    no_peers: Optional[int]
    """More infohashes, stored and sampled, with no peer get_peers returns."""
    interval: Optional[int]
    """BEP 51 ``interval`` the nodes advertise, seconds. Default 60."""
    seconds: Optional[float]
    """Seconds to run once ready (0: until closed). Default 0."""
    base_ip: Optional[str]
    """First three octets of the nodes' addresses, ``"127.0.10"`` by default."""
    port: Optional[int]
    """UDP port of every node (0: an ephemeral port each)."""
    manifest: Optional[Path]
    """Where to write the JSON manifest (default: a temporary file)."""
    seed: Optional[int]
    """Seed of the nodes' random choices, for the same network again."""


class SimulateOptions(TypedDict, total=False):
    """Keyword arguments of :func:`estudely.simulate` (``estudely simulate``)."""

    nodes: Optional[int]
    """Nodes in the network. Default 10,000,000."""
    infohashes: Optional[int]
    """Distinct infohashes stored in the network. Default: twice ``nodes``."""
    rate: Optional[float]
    """Queries per second of each crawler. Default 1,000."""
    hours: Optional[float]
    """Virtual hours to crawl. Default 6."""
    seed: Optional[int]
    """Everything in the network and the crawlers derives from it. Default 1."""
    shards: Optional[int]
    """Crawlers splitting the keyspace. Default 1."""
    every: Optional[int]
    """Virtual minutes between rows. Default 30."""
    bep51_share: Optional[float]
    """Share of nodes that speak BEP 51. Default 0.5."""
    nat_share: Optional[float]
    """Share of nodes that never answer. Default 0.3."""
    loss: Optional[float]
    """Probability that a datagram is lost, each way. Default 0.02."""
    max_known_nodes: Optional[int]
    """Nodes each crawler remembers in full. Default 100,000."""
    check_etiquette: Optional[bool]
    """Also count samples sent inside a node's interval (should be 0)."""
    search_peers: Optional[bool]
    """Also search the peers of each new infohash, as ``collect`` does."""
    full_searches: Optional[bool]
    """With ``search_peers``: search every infohash on to 20 peers."""
    serve_share: Optional[float]
    """Share of peers that serve metadata in the modelled fetches. Default 0.5."""


class QueryOptions(TypedDict, total=False):
    """Keyword arguments of the functions of :mod:`estudely.query` (``estudely query``)."""

    bind: Optional[str]
    """Local address to send from."""
    timeout: Optional[Seconds]
    """Seconds to wait for each reply. Default 5."""
    want: Optional[str]
    """BEP 32: ``"n4"``, ``"n6"`` or ``"both"``."""
