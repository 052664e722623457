"""Bencode, BitTorrent's serialisation (BEP 3), with the decoder the crawler uses on
hostile input: :func:`decode` and :func:`encode`."""

from __future__ import annotations

from typing import Any, Union

from . import _native

Bencodable = Union[int, bytes, bytearray, str, "list[Any]", "tuple[Any, ...]", "dict[Any, Any]"]


def decode(data: bytes) -> Any:
    """Decode one bencoded value: ints as ``int``, byte strings as ``bytes``, lists as
    ``list``, dicts as ``dict`` with ``bytes`` keys in the order received. Malformed input
    or trailing bytes raise ``ValueError`` naming the byte offset::

        >>> decode(b"d4:name5:hello6:lengthi42ee")
        {b'name': b'hello', b'length': 42}
    """
    return _native.bdecode(bytes(data))


def encode(value: Bencodable) -> bytes:
    """Canonical bencode of ``value`` (dict keys sorted): ``int``, ``bytes``, ``str``
    (UTF-8), ``list``/``tuple``, ``dict`` with ``bytes`` or ``str`` keys; anything else
    (``bool``, ``float``, ``None``) raises ``TypeError``::

        >>> encode({"name": "hello", "length": 42})
        b'd6:lengthi42e4:name5:helloe'
    """
    return _native.bencode(value)
