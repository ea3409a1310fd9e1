"""One pass over the rows of an out-of-core GLMM: per-row IRLS quantities, reduced to sums.

A pass streams row chunks (DuckDB record batches, or Dask partitions on the active
scheduler), computes the linear predictor, means, the deviance kernel and the IRLS weights
and working response of each chunk with the family's numpy methods, and reduces them to
grouped sums of products (the requests of :func:`~mixedfx.outofcore.aggblocks.aggregate_blocks`).
Only the sums leave a chunk: memory is bounded by the chunk size and the size of the blocks,
never by the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .sqlagg import DuckDBSource, Y, quote

CHUNK_ROWS = 1 << 18


@dataclass(frozen=True)
class RowSpec:
    """How to read the response, prior weights and offset from the data's columns.

    ``successes`` with ``failures`` for ``cbind(s, f)`` or with ``trials`` for
    ``cbind(s, n - s)``: y = s / total, prior weight total (times ``weights``), total being
    s + f or n; otherwise ``response`` is y.
    """

    response: str
    successes: str | None = None
    failures: str | None = None
    trials: str | None = None
    weights: str | None = None
    offset: str | None = None


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a chunk needs (shipped to Dask workers).

    Attributes
    ----------
    family : Family
    bases : tuple of Column
        Model columns read per chunk (fixed and random), named ``c{i}`` in a chunk.
    xcols : tuple of int
        Indices into ``bases`` of the fixed-effects columns (all of X, for X beta).
    zcols : tuple of tuple of int
        Per random term (engine order): indices into ``bases`` of its columns.
    codes : tuple of str
        Per random term (engine order): its code column in a chunk.
    """

    family: object
    bases: tuple
    xcols: tuple[int, ...]
    zcols: tuple[tuple[int, ...], ...]
    codes: tuple[str, ...]
    index: dict = field(default_factory=dict)

    def base_name(self, col) -> str:
        return f"c{self.bases.index(col)}"


@dataclass(frozen=True, eq=False)
class Params:
    """One pass's inputs.

    ``mode``: ``"mustart"`` (eta from the family's starting means, the GLM's first step),
    ``"fixed"`` (eta = offset + X beta) or ``"mixed"`` (plus Z b with ``b`` per term).
    ``requests``: (keys, pairs, key table) to sum with the IRLS weights, the working response
    being ``Y``; ``shift_x`` whether X beta is subtracted from the working response (beta held
    fixed). ``phi``: evaluate the log-likelihood sum at this dispersion.
    """

    mode: str
    beta: np.ndarray
    b: tuple = ()
    requests: tuple = ()
    shift_x: bool = False
    devres: bool = False


def chunk_arrays_pandas(part, plan: Plan, spec: RowSpec) -> dict[str, np.ndarray]:
    """A chunk's arrays from a pandas partition (Dask)."""
    out = {}
    for i, col in enumerate(plan.bases):
        v = np.ones(len(part))
        for name, level in col.atoms:
            if level is None:
                v = v * part[name].to_numpy(dtype=float)
            else:
                v = v * (part[name] == level).to_numpy(dtype=float)
        out[f"c{i}"] = v
    if spec.successes is not None:
        s = part[spec.successes].to_numpy(dtype=float)
        total = (part[spec.trials].to_numpy(dtype=float) if spec.trials is not None
                 else s + part[spec.failures].to_numpy(dtype=float))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["y"] = np.where(total > 0, s / np.where(total > 0, total, 1.0), 0.0)
        prior = total
    else:
        out["y"] = part[spec.response].to_numpy(dtype=float)
        prior = np.ones(len(part))
    if spec.weights is not None:
        prior = prior * part[spec.weights].to_numpy(dtype=float)
    out["prior"] = prior
    out["offset"] = (part[spec.offset].to_numpy(dtype=float) if spec.offset is not None
                     else np.zeros(len(part)))
    for c in plan.codes:
        out[c] = part[c].to_numpy(dtype=np.int64)
    return out


def duckdb_select(source: DuckDBSource, plan: Plan, spec: RowSpec,
                  pair_tables: dict | None = None) -> str:
    """The SQL that returns a chunk's columns (model columns computed by DuckDB);
    ``pair_tables`` maps (code, code) to (table name, levels of the second) to join the
    index of each key pair."""
    def col(name: str) -> str:
        return f"CAST(r.{quote(name)} AS DOUBLE)"

    sel = [f"CAST({source._expr(c)} AS DOUBLE) AS c{i}" for i, c in enumerate(plan.bases)]
    if spec.successes is not None:
        total = (f"({col(spec.trials)})" if spec.trials is not None
                 else f"({col(spec.successes)} + {col(spec.failures)})")
        sel.append(f"CASE WHEN {total} > 0 THEN {col(spec.successes)} / {total} ELSE 0.0 END "
                   "AS y")
        prior = total
    else:
        sel.append(f"{col(spec.response)} AS y")
        prior = "CAST(1.0 AS DOUBLE)"
    if spec.weights is not None:
        prior = f"{prior} * {col(spec.weights)}"
    sel.append(f"CAST({prior} AS DOUBLE) AS prior")
    sel.append(f"CAST({col(spec.offset) if spec.offset else '0.0'} AS DOUBLE) AS offset")
    ctes, joins = [], []
    for code, factors in source.groups:
        if source.con is None:
            ctes.append(f"{code} AS ({source._level_query(factors)})")
        on = " AND ".join(f"r.{quote(f)} = {code}.{quote(f)}" for f in factors)
        joins.append(f"JOIN {code} ON {on}")
        sel.append(f"CAST({code}.code AS BIGINT) AS {code}")
    for (k0, k1), (name, nlev) in (pair_tables or {}).items():
        sel.append(f"{name}.idx AS {name}")
        joins.append(f"JOIN {name} ON {name}.key = {k0}.code * {int(nlev)} + {k1}.code")
    sql = ("WITH " + ", ".join(ctes) + " " if ctes else "")
    return sql + f"SELECT {', '.join(sel)} FROM {source._rows()} r {' '.join(joins)}"


def structure(chunk: dict[str, np.ndarray], plan: Plan, key_sets: list[tuple[str, ...]],
              nlevels: dict[str, int], spec_name: str) -> dict:
    """A chunk's contribution to the structure pass: rows, the distinct key pairs of each
    two-key request, the family's check of y and the prior weights, and the constant
    -2 sum(loglik - kernel) at the starting means."""
    fam = plan.family
    y, a = chunk["y"], chunk["prior"]
    fam.validate(y, a, name=spec_name)
    mu0 = fam.mustart(y, a)
    const = float(-2 * np.sum(fam.loglik(y, mu0, a) - fam.kernel(y, mu0, a)))
    pairs = {}
    for keys in key_sets:
        if len(keys) == 2:
            pairs[keys] = np.unique(chunk[keys[0]] * nlevels[keys[1]] + chunk[keys[1]])
    return {"n": len(y), "const": const, "pairs": pairs}


def merge_structure(a: dict, b: dict) -> dict:
    return {"n": a["n"] + b["n"], "const": a["const"] + b["const"],
            "pairs": {k: np.union1d(a["pairs"][k], b["pairs"][k]) for k in a["pairs"]}}


def linear_predictor(chunk: dict[str, np.ndarray], plan: Plan, params: Params) -> np.ndarray:
    """eta of a chunk (with offset)."""
    fam = plan.family
    if params.mode == "mustart":
        return fam.linkfun(fam.mustart(chunk["y"], chunk["prior"]))
    eta = chunk["offset"].copy()
    for j, i in enumerate(plan.xcols):
        if params.beta[j] != 0:
            eta += params.beta[j] * chunk[f"c{i}"]
    if params.mode == "mixed":
        for cols, code, b in zip(plan.zcols, plan.codes, params.b, strict=True):
            g = chunk[code]
            for a, i in enumerate(cols):
                eta += chunk[f"c{i}"] * b[g, a]
    return eta


def chunk_pass(chunk: dict[str, np.ndarray], plan: Plan, params: Params) -> dict:
    """A chunk's sums: ``kernel`` (sum of the family's log-likelihood kernel), ``devres``
    (sum of deviance residuals, if asked), ``bad`` (rows with non-finite IRLS quantities)
    and ``sums`` (one (groups, pairs) array per request)."""
    fam = plan.family
    y, a = chunk["y"], chunk["prior"]
    eta = linear_predictor(chunk, plan, params)
    mu, d = fam.inverse(eta)
    out = {"kernel": float(fam.kernel_sum(y, mu, a)), "bad": 0, "sums": []}
    if params.devres:
        out["devres"] = float(np.sum(fam.dev_resids(y, mu, a)))
    if not params.requests:
        return out
    with np.errstate(all="ignore"):
        w = a * d * d / fam.variance(mu)
        shift = chunk["offset"]
        if params.shift_x:
            shift = shift + sum((params.beta[j] * chunk[f"c{i}"]
                                 for j, i in enumerate(plan.xcols)), np.zeros(len(y)))
        z = eta - shift + (y - mu) / d
    out["bad"] = int(np.sum(~(np.isfinite(w) & np.isfinite(z))))

    def value(base) -> np.ndarray:
        return z if base == Y else chunk[plan.index[base]]

    for keys, pairs, table in params.requests:
        if not keys:
            idx, size = np.zeros(len(y), dtype=np.int64), 1
        elif len(keys) == 1:
            idx, size = chunk[keys[0]], table
        else:
            size = len(table[0])
            idx = chunk.get(f"p_{keys[0]}_{keys[1]}")  # the pair's index, joined by DuckDB
            if idx is None:
                idx = np.searchsorted(table[0], chunk[keys[0]] * table[1] + chunk[keys[1]])
        sums = np.empty((size, len(pairs)))
        for j, (p, q) in enumerate(pairs):
            sums[:, j] = np.bincount(idx, weights=w * value(p) * value(q), minlength=size)
        out["sums"].append(sums)
    return out


def merge_pass(a: dict, b: dict) -> dict:
    out = {"kernel": a["kernel"] + b["kernel"], "bad": a["bad"] + b["bad"],
           "sums": [x + y for x, y in zip(a["sums"], b["sums"], strict=True)]}
    if "devres" in a:
        out["devres"] = a["devres"] + b["devres"]
    return out


def _has_cluster() -> bool:
    """Whether a ``dask.distributed`` client is active."""
    try:
        from distributed import get_client

        get_client()
    except (ImportError, ValueError):
        return False
    return True


class Rows:
    """Streams the rows of a DuckDB or Dask source in chunks and reduces a chunk function.

    Parameters
    ----------
    source : DuckDBSource or DaskSource
        With its code columns added.
    plan : Plan
    spec : RowSpec
    chunk_rows : int
        Rows per DuckDB record batch (Dask uses its partitions).
    """

    def __init__(self, source, plan: Plan, spec: RowSpec, chunk_rows: int = CHUNK_ROWS) -> None:
        self.source, self.plan, self.spec = source, plan, spec
        self.chunk_rows = chunk_rows
        self.passes = 0
        if isinstance(source, DuckDBSource):
            self._sql = duckdb_select(source, plan, spec)
        else:
            # the model's numeric columns (and level codes) once per partition; on a
            # dask.distributed cluster they are kept on the workers (distributed memory), so
            # each pass reads them instead of re-running the level joins. Without a cluster
            # nothing is persisted (that would hold every row in this process).
            import pandas as pd

            def numeric(part):
                return pd.DataFrame(chunk_arrays_pandas(part, plan, spec), index=part.index)

            meta = numeric(source.ddf._meta)
            parts = source.ddf.map_partitions(numeric, meta=meta)
            self._parts = parts.persist() if _has_cluster() else parts

    def index_pairs(self, pair_keys: dict, nlevels: dict[str, int]) -> None:
        """Parquet input: number the distinct key pairs in DuckDB tables and join the index
        to the rows, so a pass reads it instead of searching the pairs (the numpy search is
        the fallback, e.g. for DuckDB relations)."""
        src = self.source
        if not isinstance(src, DuckDBSource) or src.con is None:
            return
        import pandas as pd

        tables = {}
        for (k0, k1), uniq in pair_keys.items():
            name = f"p_{k0}_{k1}"
            table = pd.DataFrame({"key": uniq.astype(np.int64),
                                  "idx": np.arange(len(uniq), dtype=np.int64)})
            src.con.register(f"__{name}_df", table)
            src.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM "
                            f"__{name}_df")
            src.con.unregister(f"__{name}_df")
            tables[k0, k1] = (name, nlevels[k1])
        self._sql = duckdb_select(src, self.plan, self.spec, tables)

    def _duckdb_chunks(self):
        src = self.source
        if src.con is not None:
            reader = src.con.sql(self._sql).to_arrow_reader(self.chunk_rows)
        else:
            reader = src.relation.query("src", self._sql).to_arrow_reader(self.chunk_rows)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            yield {name: batch.column(i).to_numpy(zero_copy_only=False)
                   for i, name in enumerate(batch.schema.names)}

    def reduce(self, fn, merge, *args):
        """``merge`` over chunks of ``fn(chunk, *args)``."""
        self.passes += 1
        if isinstance(self.source, DuckDBSource):
            acc = None
            for chunk in self._duckdb_chunks():
                part = fn(chunk, *args)
                acc = part if acc is None else merge(acc, part)
            if acc is None:
                raise DataError("the data have no complete rows for the model's columns")
            return acc
        import dask

        def on_partition(part, *a):
            return fn({c: part[c].to_numpy() for c in part.columns}, *a)

        parts = [dask.delayed(on_partition)(p, *args) for p in self._parts.to_delayed()]
        while len(parts) > 1:  # tree reduction on the workers
            parts = [dask.delayed(merge)(parts[i], parts[i + 1]) if i + 1 < len(parts)
                     else parts[i] for i in range(0, len(parts), 2)]
        (acc,) = dask.compute(parts[0])
        return acc
