"""``mixedfx.lmm`` on a Parquet path or glob, a DuckDB relation or a Dask DataFrame."""

from __future__ import annotations

import ctypes
import os
import time
import warnings

import numpy as np

from ..design import ReTerm
from ..errors import DataError, MissingDataWarning
from ..formula import parse_formula
from .aggblocks import aggregate_blocks, fixed_cross
from .labels import level_labels
from .model import AggregatedModel
from .terms import fixed_columns, is_categorical, random_columns, variables_of

DISK_ROWS = 5_000_000  # from this many rows the first term's blocks are kept on disk


def release_heap() -> None:
    """Return the C heap's free memory to the operating system (glibc's ``malloc_trim``):
    after streaming millions of rows in batches the heap keeps hundreds of MB it no longer
    uses, which would count against the fit's peak. A no-op where it is not available."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def is_outofcore(data: object) -> bool:
    """Whether ``data`` is a Parquet path/glob, a DuckDB relation or a Dask DataFrame."""
    if isinstance(data, (str, os.PathLike)):
        return True
    mod = type(data).__module__
    return mod.startswith("duckdb") or mod.startswith("dask")


def _source(data, used: list[str], threads, memory_limit, weight: str | None = None,
            offset: str | None = None):
    """(backend source, column -> type name)."""
    if isinstance(data, (str, os.PathLike)):
        from .source import check_schemas, parquet_files
        from .sqlagg import DuckDBSource

        files = parquet_files(data)
        types = check_schemas(files, used)
        return DuckDBSource(files=files, used=used, weight=weight, offset=offset,
                            threads=threads, memory_limit=memory_limit), types
    if type(data).__module__.startswith("duckdb"):
        from .sqlagg import DuckDBSource

        types = {c: str(t) for c, t in zip(data.columns, data.types, strict=True)}
        _check_columns(used, types)
        return DuckDBSource(relation=data, used=used, weight=weight, offset=offset), types
    from .daskagg import DaskSource

    types = {c: str(t) for c, t in data.dtypes.items()}
    _check_columns(used, types)
    return DaskSource(data, used, weight=weight, offset=offset), types


def _column_arg(value: object, what: str) -> str | None:
    """The column named by ``weights=`` or ``offset=``: out of core only a name will do."""
    if value is None or isinstance(value, str):
        return value
    raise DataError(f"out of core, {what}= must be the name of a column of the data, not "
                    f"{type(value).__name__}: the rows are not in memory, so one value per row "
                    f"cannot be matched to them; put the values in a column and pass its name")


def _check_columns(used: list[str], types: dict[str, str]) -> None:
    missing = [c for c in used if c not in types]
    if missing:
        raise DataError(f"column(s) {', '.join(map(repr, missing))} not found in the data; "
                        f"available: {', '.join(types)}")


def lmm_outofcore(formula: str, data: object, *, reml: bool = True, weights=None,
                  offset=None, optimizer: str = "newuoa", control: dict | None = None,
                  data_name: str | None = None, threads: int | None = None,
                  memory_limit: str | None = None, timings: dict | None = None,
                  blocks_on_disk: bool | None = None):
    """Fit an LMM whose blocks are computed by aggregation (see :func:`mixedfx.lmm`).

    ``threads`` and ``memory_limit`` (e.g. ``"8GB"``) set DuckDB's limits for Parquet
    input. ``timings``, if a dict, receives ``aggregate_s`` and ``optimize_s``.
    ``blocks_on_disk`` keeps the first term's blocks (about one entry per row when its
    levels are users) in temporary files streamed at each evaluation, so memory stays
    bounded by the remainder and one chunk; the default (None) does so from
    :data:`DISK_ROWS` complete rows on. ``weights`` and ``offset`` name columns (prior
    weights, as lme4's; an offset subtracted from the response); rows with a missing value
    in either are dropped, as in memory.
    """
    weight, off = _column_arg(weights, "weights"), _column_arg(offset, "offset")
    parsed = parse_formula(formula)
    if not parsed.random:
        raise DataError("the formula has no random-effects term such as (1 | group)")
    if not parsed.response.replace("_", "a").replace(".", "a").isalnum():
        raise DataError(f"response '{parsed.response}' is not supported out of core: use a "
                        "column name (compute transformations in the data first)")
    used = [parsed.response] + sorted(variables_of(parsed.fixed))
    for term in parsed.random:
        used += sorted(variables_of(term.expr)) + list(term.factors)
    used += [c for c in (weight, off) if c is not None]
    used = list(dict.fromkeys(used))
    t0 = time.perf_counter()
    source, types = _source(data, used, threads, memory_limit, weight, off)
    if is_categorical(types[parsed.response]):
        raise DataError(f"response '{parsed.response}' must be numeric")
    for what, col in (("weights", weight), ("offset", off)):
        if col is not None and is_categorical(types[col]):
            raise DataError(f"{what} must be numeric, got column '{col}' of type {types[col]}")
    n, total = source.counts()
    if total > n:
        warnings.warn(f"{total - n} row(s) with missing values in the model's columns were "
                      "dropped", MissingDataWarning, stacklevel=3)
    sum_log_weights, bad, not_one = source.weight_summary()
    if bad:
        raise DataError(f"weights must be finite and non-negative: column '{weight}' has {bad} "
                        "negative or non-finite value(s)")
    levels = {c: [v for (v,) in source.levels((c,))] for c in used
              if is_categorical(types[c]) and c in variables_of(parsed.fixed)}
    xcols = fixed_columns(parsed.fixed, types, levels)
    terms, zcols, codes, raw = [], [], [], []
    for k, term in enumerate(parsed.random):
        cols = random_columns(term.expr, types, term.group)
        code = f"g{k}"
        labels = source.add_group(code, term.factors)  # numbers the levels, returns them
        names = level_labels(labels)
        if len(names) < 2 or len(names) >= n:
            raise DataError(f"grouping factor '{term.group}' has {len(names)} levels for {n} "
                            "observations; it needs at least 2 and fewer than the observations")
        terms.append(ReTerm(group=term.group, columns=tuple(c.name for c in cols),
                            levels=names, codes=np.zeros(0, dtype=np.int64),
                            Z=np.zeros((0, len(cols)))))
        zcols.append(cols)
        raw.append(labels)
        codes.append(code)
    # first pass: X'X and X'y, for the least-squares shift of y (as LmmModel does)
    source.set_shift(parsed.response, [])
    XtX, Xty = fixed_cross(source, xcols)
    if np.linalg.matrix_rank(XtX / np.sqrt(np.outer(np.diag(XtX), np.diag(XtX)) + 1e-300)) \
            < len(xcols):
        raise DataError("the fixed-effects columns are linearly dependent (rank deficient); "
                        "out of core they are not dropped automatically: remove a term")
    beta_shift = np.linalg.solve(XtX, Xty)
    source.set_shift(parsed.response, list(zip(xcols, beta_shift, strict=True)))
    model_terms = AggregatedModel.order(terms)
    on_disk = n >= DISK_ROWS if blocks_on_disk is None else bool(blocks_on_disk)
    blocks = aggregate_blocks(source, [zcols[k] for k in model_terms],
                              [codes[k] for k in model_terms],
                              [terms[k].nlevels for k in model_terms], xcols, n,
                              on_disk=on_disk, sum_log_weights=sum_log_weights)
    if hasattr(source, "idle"):  # DuckDB hands back its buffers while the optimizer runs
        source.idle()
    release_heap()
    t1 = time.perf_counter()
    model = AggregatedModel(parsed.text, terms, tuple(c.name for c in xcols), blocks,
                            beta_shift, reml, total - n,
                            writer=(source, parsed, xcols, zcols, raw),
                            weights_used=not_one > 0)
    res = model.fit(optimizer=optimizer, control=control, data_name=data_name)
    if timings is not None:
        timings.update(aggregate_s=t1 - t0, optimize_s=time.perf_counter() - t1,
                       feval=res.optsum.feval)
    return res
