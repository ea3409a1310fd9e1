"""Per-row outputs of an out-of-core fit written back to Parquet, never held in Python:
fitted values (X beta + Z b + offset, as ``res.fitted`` in memory) and residuals (response
minus fitted), computed by DuckDB or Dask joining the rows with the small per-level tables
of conditional modes."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import DataError
from .sqlagg import DuckDBSource, quote


def _mode_tables(res, parsed, zcols, raw) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    """Per random term: its factors and a frame (factor values, one mode per column)."""
    terms = res.model.terms
    out = []
    for k, term in enumerate(parsed.random):
        # the result's ranef frames are by group; columns of separate terms of one factor
        # are concatenated, so pick this term's columns by name from its group's frame
        t = next(t for t in terms if t.group == term.group
                 and t.columns == tuple(c.name for c in zcols[k]))
        modes = res.ranef[t.group][list(t.columns)].to_numpy()
        table = raw[k].to_pandas()  # the factor values (an Arrow table), for the join
        for j in range(len(t.columns)):
            table[f"__b{k}_{j}"] = modes[:, j]
        out.append((term.factors, table))
    return out


def write_fitted(res, path: str | os.PathLike) -> str:
    """Write the data's complete rows plus ``fitted`` and ``residual`` to Parquet at ``path``.

    DuckDB input is written by a ``COPY`` query (one file); Dask input by
    ``DataFrame.to_parquet`` (a directory of files). Returns the path.
    """
    model = res.model
    if getattr(model, "writer", None) is None:
        raise DataError("write_fitted is for out-of-core fits; in memory use res.fitted")
    source, parsed, xcols, zcols, raw = model.writer
    tables = _mode_tables(res, parsed, zcols, raw)
    beta = res.fixef.to_numpy()
    path = str(path)
    if isinstance(source, DuckDBSource):
        if source.con is None:
            raise DataError("write_fitted needs Parquet or Dask input; for a DuckDB relation, "
                            "write the relation to Parquet first (relation.write_parquet)")
        con = source.con
        joins, parts = [], [f"({float(b)!r}) * {source._expr(c)}" for c, b in zip(xcols, beta,
                                                                               strict=True)]
        for k, (factors, table) in enumerate(tables):
            con.register(f"__modes{k}", table)
            on = " AND ".join(f"r.{quote(f)} = m{k}.{quote(f)}" for f in factors)
            joins.append(f"LEFT JOIN __modes{k} m{k} ON {on}")
            parts += [f"m{k}.__b{k}_{j} * {source._expr(c)}" for j, c in enumerate(zcols[k])]
        if source.offset is not None:
            parts.append(f"CAST(r.{quote(source.offset)} AS DOUBLE)")
        fitted = " + ".join(parts)
        sql = (f"SELECT r.*, {fitted} AS fitted, CAST(r.{quote(parsed.response)} AS DOUBLE) "
               f"- ({fitted}) AS residual FROM {source._rows()} r {' '.join(joins)}")
        source.active()
        try:
            con.execute(f"COPY ({sql}) TO {_lit(path)} (FORMAT parquet)")
        finally:
            source.idle()
        return path
    return _write_dask(source, parsed, xcols, zcols, beta, tables, path)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _write_dask(source, parsed, xcols, zcols, beta, tables, path: str) -> str:
    ddf = source.total.dropna(subset=source.used)
    for factors, table in tables:
        ddf = ddf.merge(table, on=list(factors), how="left")

    def add(part: pd.DataFrame) -> pd.DataFrame:
        fitted = np.zeros(len(part))
        for c, b in zip(xcols, beta, strict=True):
            fitted += b * source._value(part, c)
        for k in range(len(tables)):
            for j, c in enumerate(zcols[k]):
                fitted += part[f"__b{k}_{j}"].to_numpy() * source._value(part, c)
        if source.offset is not None:
            fitted += part[source.offset].to_numpy(dtype=float)
        out = part.drop(columns=[c for c in part.columns if c.startswith("__b")])
        out["fitted"] = fitted
        out["residual"] = part[parsed.response].to_numpy(dtype=float) - fitted
        return out

    meta = add(ddf._meta)
    ddf.map_partitions(add, meta=meta).to_parquet(path, write_index=False)
    return path
