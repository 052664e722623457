"""The index's torrents as Arrow arrays, then pandas columns, with no Python object per
row, per file or per peer (used where pyarrow is installed).

The native side (crates/py/src/columns.rs) lays each chunk out in Arrow's own buffers; a
column is a tuple::

    ("text" | "binary", validity, offsets, data, nulls)   large_string / large_binary
    ("int", validity, values, nulls)                       int64
    ("bool", bits)                                         bool, never null
    ("list", validity, offsets, values, nulls)             large_list of the column `values`
    ("struct", validity, [(name, column), ...], nulls)     struct

with every buffer a ``bytes`` object or a native ``Buffer`` (``validity`` None when
nothing is null), which pyarrow wraps without copying (``py_buffer``, ``foreign_buffer``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import _frames


def _length(column: tuple[Any, ...]) -> int:
    """Values in a column, from its buffers."""
    kind = column[0]
    if kind in ("text", "binary", "list"):
        return len(column[2]) // 8 - 1
    if kind == "int":
        return len(column[2]) // 8
    if kind == "struct":
        return _length(column[2][0][1])
    raise ValueError(f"no length for a {kind} column")


def _buffer(pa: Any, data: Any) -> Any:
    """A pyarrow Buffer over ``data``, without a copy: a ``bytes`` object, or a native
    ``Buffer`` (the memory the native side laid the column out in, kept alive as the
    pyarrow buffer's base); None stays None."""
    if data is None:
        return None
    if isinstance(data, bytes):
        return pa.py_buffer(data)
    return pa.foreign_buffer(data.address, len(data), base=data)


def array(pa: Any, column: tuple[Any, ...], n: int) -> Any:
    """The pyarrow array of ``n`` values laid out in ``column``."""
    kind = column[0]
    if kind in ("text", "binary"):
        _, valid, offsets, data, nulls = column
        kind_type = pa.large_string() if kind == "text" else pa.large_binary()
        buffers = [_buffer(pa, valid), _buffer(pa, offsets), _buffer(pa, data)]
        return pa.Array.from_buffers(kind_type, n, buffers, null_count=nulls)
    if kind == "int":
        _, valid, values, nulls = column
        buffers = [_buffer(pa, valid), _buffer(pa, values)]
        return pa.Array.from_buffers(pa.int64(), n, buffers, null_count=nulls)
    if kind == "bool":
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(column[1])], null_count=0)
    if kind == "list":
        _, valid, offsets, values, nulls = column
        child = array(pa, values, _length(values))
        buffers = [_buffer(pa, valid), _buffer(pa, offsets)]
        return pa.Array.from_buffers(
            pa.large_list(child.type), n, buffers, null_count=nulls, children=[child]
        )
    if kind == "struct":
        _, valid, fields, nulls = column
        children = [array(pa, c, n) for _, c in fields]
        kind_type = pa.struct([(name, c.type) for (name, _), c in zip(fields, children)])
        return pa.Array.from_buffers(
            kind_type, n, [_buffer(pa, valid)], null_count=nulls, children=children
        )
    raise ValueError(f"unknown column kind {kind!r}")


#: Check every value of every chunk (offsets in order, text valid UTF-8) rather than the
#: buffers' sizes: the tests do. The native side makes both true by construction (offsets
#: only grow; text is checked as UTF-8 as it is laid out), and the check of every value
#: repeated that work on the reading thread (0.2 s of CPU at 1 M torrents).
FULL_CHECK = False


def batch(pa: Any, chunk: dict[str, Any]) -> Any:
    """A chunk from the native side as a pyarrow RecordBatch, checked (a buffer too short
    for its values, or an offset past the end of its data, raises rather than reads past
    its end; every value too with :data:`FULL_CHECK`)."""
    n = chunk["rows"]
    names = [name for name, _ in chunk["columns"]]
    arrays = [array(pa, column, n) for _, column in chunk["columns"]]
    for a in arrays:
        a.validate(full=FULL_CHECK)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def frame(pa: Any, table: Any) -> pd.DataFrame:
    """A Table (or RecordBatch) of torrents as a DataFrame with the package's dtypes:
    text as pandas' text dtype, whole numbers ``int64`` (``Int64`` where they may be
    missing), flags ``bool``, ``name_bytes`` as ``bytes`` objects; ``files``, ``peers``
    and ``release`` stay in Arrow (``pd.ArrowDtype``: an element is a list or a dict
    when read, but no Python object is made for the rest)."""
    dtypes = dict(_frames.TORRENTS)
    nullable = {pa.int64(): pd.Int64Dtype()}.get
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        dtype = dtypes.get(name, "object")
        if dtype == "int64" or dtype == "bool":
            # Zero-copy for the numbers; bools are unpacked from their bits.
            values = column.to_numpy(zero_copy_only=False)
        elif dtype == "Int64":
            values = column.to_pandas(types_mapper=nullable)
        elif name == "name_bytes":
            # A bytes object per row, without looking for equal names to share one
            # (pyarrow's default): that hashing was most of this function's time.
            values = column.to_pandas(deduplicate_objects=False)
        elif dtype == "str":
            values = column.to_pandas()
        else:
            values = pd.arrays.ArrowExtensionArray(column)
        columns[name] = pd.Series(values, name=name).reset_index(drop=True)
    if not columns:
        return pd.DataFrame()
    return pd.concat(columns.values(), axis=1)
