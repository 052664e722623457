"""Single KRPC queries, for learning how the DHT answers: ``estudely query``.

Each sends one query from a short-lived read-only node (BEP 43) and returns the reply as a
dict, the object ``estudely query ... --format jsonl`` prints: ``method``, ``from``,
``rtt_ms``, ``id``, ``version``, ``ip``, ``nodes`` / ``nodes6`` (``{id, addr}``), ``values``
(peers), ``token``, ``samples`` and ``interval`` / ``num`` (BEP 51), ``bf_seeds`` /
``bf_peers`` (BEP 33)... Keyword options are the command's: ``timeout`` (seconds, 5),
``bind``, ``want`` (``"n4"``, ``"n6"``, ``"both"``). No reply within the timeout, or an
error reply, raises :class:`estudely.EstudelyError`; a bad address ``ValueError``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from . import _native

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .types import QueryOptions


def _ask(method: str, args: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    task = _native.query(method, args, **options)
    try:
        return [json.loads(line) for line in task]
    finally:
        task.close()


def ping(addr: str, **options: Unpack[QueryOptions]) -> dict[str, Any]:
    """``ping`` the node at ``addr`` (``IP:PORT``, ``[IPv6]:PORT`` or ``HOST:PORT``): is it
    alive, and what is its id?"""
    return _ask("ping", [addr], dict(options))[-1]


def find_node(
    addr: str, target: Optional[str] = None, **options: Unpack[QueryOptions]
) -> dict[str, Any]:
    """``find_node``: the nodes ``addr`` knows closest to ``target`` (40 hex digits;
    random by default)."""
    args = [addr] + ([target] if target is not None else [])
    return _ask("find-node", args, dict(options))[-1]


def get_peers(
    addr: str,
    infohash: str,
    scrape: bool = False,
    noseed: bool = False,
    **options: Unpack[QueryOptions],
) -> dict[str, Any]:
    """``get_peers``: peers of ``infohash`` (40 or 64 hex digits, or a magnet link), or
    nodes closer to it, and a write token. ``scrape`` asks for BEP 33 bloom filters,
    ``noseed`` for non-seed peers only."""
    flags = dict(options, scrape=scrape, noseed=noseed)
    return _ask("get-peers", [addr, infohash], flags)[-1]


def sample_infohashes(
    addr: str, target: Optional[str] = None, **options: Unpack[QueryOptions]
) -> dict[str, Any]:
    """``sample_infohashes`` (BEP 51): a sample of the infohashes ``addr`` stores
    (``samples``), how many it stores (``num``) and how long to wait before asking again
    (``interval``, seconds)."""
    args = [addr] + ([target] if target is not None else [])
    return _ask("sample", args, dict(options))[-1]
