"""Dask backend: the same level coding and grouped sums as :mod:`.sqlagg`, computed by a
Dask DataFrame (on whatever scheduler is active, e.g. a ``dask.distributed`` cluster)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .sqlagg import Y
from .terms import Column


class DaskSource:
    """Rows of a Dask DataFrame, filtered to complete cases of the ``used`` columns;
    ``weight`` and ``offset`` name columns of prior weights and an offset (in ``used``)."""

    def __init__(self, ddf, used: list[str], weight: str | None = None,
                 offset: str | None = None) -> None:
        self.ddf = ddf[used].dropna()
        self.used = used
        self.weight, self.offset = weight, offset
        self.total = ddf
        self.codes: dict[str, tuple[tuple[str, ...], pd.DataFrame]] = {}
        self.shift: list[tuple[Column, float]] = []
        self.response = ""

    def counts(self) -> tuple[int, int]:
        """(complete rows, all rows)."""
        import dask

        k, n = dask.compute(self.ddf.shape[0], self.total.shape[0])
        return int(k), int(n)

    def weight_summary(self) -> tuple[float, int, int]:
        """Over complete rows: (sum of log w over w > 0, rows whose weight is negative or not
        finite, rows whose weight is not 1); zeros without a weight column."""
        import dask

        if self.weight is None:
            return 0.0, 0, 0
        w = self.ddf[self.weight].astype(float)
        logs = w.where(w > 0, 1.0).map_partitions(np.log, meta=(self.weight, float))
        s, bad, other = dask.compute(logs.sum(), ((w < 0) | ~w.map_partitions(
            np.isfinite, meta=(self.weight, bool))).sum(), (w != 1).sum())
        return float(s), int(bad), int(other)

    def levels(self, factors: tuple[str, ...]) -> list[tuple]:
        """Distinct values of ``factors``, sorted (factor order)."""
        return list(self._distinct(factors).itertuples(index=False, name=None))

    def _distinct(self, factors: tuple[str, ...]) -> pd.DataFrame:
        uniq = self.ddf[list(factors)].drop_duplicates().compute()
        return uniq.sort_values(list(factors)).reset_index(drop=True)

    def add_group(self, code: str, factors: tuple[str, ...]):
        """Add a code column (0-based index of the sorted distinct values of ``factors``);
        returns the sorted distinct values as an Arrow table (one DISTINCT pass for both)."""
        import pyarrow as pa

        uniq = self._distinct(factors)
        levels = pa.Table.from_pandas(uniq, preserve_index=False)
        table = uniq.assign(**{code: np.arange(len(uniq), dtype=np.int64)})
        self.ddf = self.ddf.merge(table, on=list(factors), how="inner")
        return levels

    def set_shift(self, response: str, shift: list[tuple[Column, float]]) -> None:
        """The response base column is ``response - offset - sum(b_j * X_j)``."""
        self.response, self.shift = response, shift

    def _value(self, part: pd.DataFrame, base) -> np.ndarray:
        if base == Y:
            out = part[self.response].to_numpy(dtype=float).copy()
            if self.offset is not None:
                out -= part[self.offset].to_numpy(dtype=float)
            for c, b in self.shift:
                if b != 0:
                    out -= b * self._value(part, c)
            return out
        out = np.ones(len(part))
        for col, level in base.atoms:
            if level is None:
                out = out * part[col].to_numpy(dtype=float)
            else:
                out = out * (part[col] == level).to_numpy(dtype=float)
        return out

    def sums(self, keys: list[str], pairs: list[tuple]) -> tuple[list[np.ndarray], np.ndarray]:
        """Sums of (weighted) products of base columns grouped by code columns ``keys``."""
        names = [f"v{i}" for i in range(len(pairs))]

        def products(part: pd.DataFrame) -> pd.DataFrame:
            out = {k: part[k].to_numpy() for k in keys}
            w = None if self.weight is None else part[self.weight].to_numpy(dtype=float)
            for name, (a, b) in zip(names, pairs, strict=True):
                v = self._value(part, a) * self._value(part, b)
                out[name] = v if w is None else w * v
            return pd.DataFrame(out, index=part.index)

        meta = pd.DataFrame({**{k: pd.Series(dtype=np.int64) for k in keys},
                             **{n: pd.Series(dtype=float) for n in names}})
        prod = self.ddf.map_partitions(products, meta=meta)
        if keys:
            agg = prod.groupby(keys).sum().compute().reset_index()
            return [agg[k].to_numpy(np.int64) for k in keys], agg[names].to_numpy(float)
        total = prod[names].sum().compute()
        return [], np.asarray(total, dtype=float).reshape(1, -1)
