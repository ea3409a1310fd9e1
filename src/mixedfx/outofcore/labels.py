"""Level labels of a grouping factor out of core, kept compact for millions of levels.

A ratings data set has ten million users: as Python tuples and strings their labels alone
take about 1.5 GB, more than half the in-memory size of the data. From
:data:`COMPACT_LEVELS` levels on, integer and string factors are labelled by an Arrow-backed
string index (about 12 bytes a label) and the raw values stay in an Arrow table; the labels
are the same strings either way ("a:b" for an interaction, as lme4 prints them).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

COMPACT_LEVELS = 100_000


def _arrow_string(col: pa.ChunkedArray) -> pa.Array | None:
    """The column as strings when Arrow's cast gives Python's ``str`` (integers, strings)."""
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or (
            hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t)):
        return pc.cast(col.combine_chunks(), pa.string())
    return None


def level_labels(table: pa.Table) -> tuple[str, ...] | pd.Index:
    """Labels of the sorted distinct factor combinations in ``table`` (one column per
    factor): a tuple of str, or a string Index for many levels."""
    if table.num_rows >= COMPACT_LEVELS:
        parts = [_arrow_string(table.column(i)) for i in range(table.num_columns)]
        if all(p is not None for p in parts):
            joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ":")
            return pd.Index(pd.arrays.ArrowStringArray(pa.chunked_array([joined])))
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return tuple(":".join(str(v) for v in lab) for lab in zip(*columns, strict=True))
