"""DataFrames with fixed columns and dtypes, built from the rows the commands write.

Each table's first columns are the command line's CSV columns, in their order; the fields
its JSON lines add come after, then ``name_bytes`` (the exact name bytes, decoded from
``name_hex``). Whole numbers are ``int64``; numbers that may be missing (a row without a
peer, an unknown swarm estimate) are pandas' nullable ``Int64``; flags are ``bool``; text
is pandas' default string dtype; lists (``files``, ``peers``) are Python objects here (the
index's torrents read with pyarrow keep them in Arrow instead: ``_arrow.py``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

# Column name -> dtype; "str" is whatever pandas uses for text, "object" a Python object.
Spec = Sequence["tuple[str, str]"]

COLLECT: Spec = (
    ("infohash", "str"),
    ("name", "str"),
    ("file_count", "int64"),
    ("total_bytes", "int64"),
    ("piece_length", "int64"),
    ("peer_ip", "str"),
    ("peer_port", "Int64"),
    ("metadata_ok", "bool"),
    ("infohash_v2", "str"),
    ("name_hex", "str"),
    ("version", "str"),
    ("seeds_estimate", "Int64"),
    ("peers_estimate", "Int64"),
    ("name_bytes", "object"),
)

CRAWL: Spec = (
    ("infohash", "str"),
    ("peer_ip", "str"),
    ("peer_port", "int64"),
    ("source", "str"),
)

METADATA: Spec = (
    ("infohash", "str"),
    ("name", "str"),
    ("file_count", "int64"),
    ("total_bytes", "int64"),
    ("piece_length", "int64"),
    ("infohash_v2", "str"),
    ("name_hex", "str"),
    ("version", "str"),
    ("metadata_size", "int64"),
    ("peer", "str"),
    ("client", "str"),
    ("transport", "str"),
    ("failed", "object"),
    ("name_bytes", "object"),
)

# `export --format jsonl`'s fields, in its order.
TORRENTS: Spec = (
    ("infohash", "str"),
    ("infohash_v2", "str"),
    ("name", "str"),
    ("name_hex", "str"),
    ("version", "str"),
    ("file_count", "int64"),
    ("total_bytes", "int64"),
    ("piece_length", "int64"),
    ("metadata_ok", "bool"),
    ("private", "bool"),
    ("discovered", "int64"),
    ("last_seen", "int64"),
    ("source", "str"),
    ("seeds_estimate", "Int64"),
    ("peers_estimate", "Int64"),
    ("estimated_at", "Int64"),
    ("category", "str"),
    ("release", "object"),
    ("files", "object"),
    ("files_omitted", "int64"),
    ("peers", "object"),
    ("name_bytes", "object"),
)

# `search --format jsonl`'s fields, in its order.
HITS: Spec = (
    ("infohash", "str"),
    ("infohash_v2", "str"),
    ("name", "str"),
    ("name_hex", "str"),
    ("version", "str"),
    ("file_count", "int64"),
    ("total_bytes", "int64"),
    ("piece_length", "int64"),
    ("private", "bool"),
    ("discovered", "int64"),
    ("last_seen", "int64"),
    ("source", "str"),
    ("seeds_estimate", "Int64"),
    ("peers_estimate", "Int64"),
    ("estimated_at", "Int64"),
    ("category", "str"),
    ("release", "object"),
    ("matched_file", "str"),
    ("name_bytes", "object"),
)

FILES: Spec = (
    ("infohash", "str"),
    ("path", "str"),
    ("length", "int64"),
    ("path_hex", "object"),
)

STATS: Spec = (("group", "str"), ("key", "str"), ("count", "int64"))

#: Columns of indexes that classify what they store (``category``: ``movie``, ``tv``, ...;
#: ``release``: the fields parsed from the name), left out where the rows have none.
OPTIONAL = frozenset({"category", "release"})


def _text_dtype() -> Any:
    """pandas' own dtype for text: ``str`` from pandas 3, ``object`` before."""
    return pd.Series(["x"]).dtype


def _series(name: str, dtype: str, values: Sequence[Any]) -> "pd.Series[Any]":
    series: "pd.Series[Any]"
    if dtype == "object":
        # Element by element: a list of lists must stay one list per row.
        array = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            array[i] = value
        series = pd.Series(array, name=name)
    else:
        kind = _text_dtype() if dtype == "str" else dtype
        series = pd.Series(list(values), dtype=kind, name=name)
    return series


def frame(spec: Spec, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A DataFrame of ``spec``'s columns, in its order and dtypes, from ``columns`` (a
    column missing from it is all ``None``; ``name_bytes`` comes from ``name_hex``),
    followed by any other column given, as Python objects."""
    data = dict(columns)
    rows = len(next(iter(data.values()))) if data else 0
    if "name_bytes" not in data and "name_hex" in data:
        data["name_bytes"] = [
            None if h is None else bytes.fromhex(h) for h in data["name_hex"]
        ]
    known = {name for name, _ in spec}
    series = [
        _series(name, dtype, data.get(name, [None] * rows))
        for name, dtype in spec
        if name in data or name not in OPTIONAL
    ] + [_series(name, "object", v) for name, v in data.items() if name not in known]
    return pd.concat(series, axis=1)


def from_records(spec: Spec, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`frame` from rows (dicts, as the commands' JSON lines are)."""
    rows = list(rows)
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return frame(spec, {key: [row.get(key) for row in rows] for key in keys})
