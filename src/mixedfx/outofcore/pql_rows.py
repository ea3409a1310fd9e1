"""Penalized quasi-likelihood out of core (MASS::glmmPQL's iterations, as
:func:`mixedfx.glmm.pql.iterate`), on a Parquet/DuckDB/Dask source.

Each iteration is one pass over the rows that sums the working LMM's blocks (working response
``eta - offset + (y - mu) / mu_eta`` and weights ``prior mu_eta^2 / V(mu)`` at the current
linear predictor: exactly the weighted blocks of an out-of-core PIRLS step with beta free), a
weighted ML fit of the LMM on those blocks (:class:`~mixedfx.outofcore.model.
AggregatedModel`), and one pass for the change of the linear predictor. The containment df
come from one more pass (per-level ranges of the fixed-effects columns).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..glmm.pql import pql_result, pql_settings, settle, strata_df
from ..glmm.pql_result import PqlResult
from .glmm_dispatch import build_rows_model
from .glmm_engine import OocGlmmModel, OutOfCorePirls, glm_beta_rows
from .glmm_rows import Params, linear_predictor
from .model import AggregatedModel


def _eta_change_chunk(chunk, plan, old: Params, new: Params) -> dict:
    e_old, e_new = linear_predictor(chunk, plan, old), linear_predictor(chunk, plan, new)
    return {"diff": float(np.sum((e_new - e_old) ** 2)), "size": float(np.sum(e_new**2))}


def _add(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def _ranges_chunk(chunk, plan, codes: tuple[str, ...], nlevels: tuple[int, ...]) -> dict:
    """Per fixed column: global min/max and first value; per (code, column): level ranges."""
    out = {"min": [], "max": [], "lo": [], "hi": []}
    for i in plan.xcols:
        x = chunk[f"c{i}"]
        out["min"].append(float(np.min(x)))
        out["max"].append(float(np.max(x)))
        lo, hi = [], []
        for code, size in zip(codes, nlevels, strict=True):
            a, b = np.full(size, np.inf), np.full(size, -np.inf)
            np.minimum.at(a, chunk[code], x)
            np.maximum.at(b, chunk[code], x)
            lo.append(a)
            hi.append(b)
        out["lo"].append(lo)
        out["hi"].append(hi)
    return out


def _merge_ranges(a: dict, b: dict) -> dict:
    return {"min": np.minimum(a["min"], b["min"]).tolist(),
            "max": np.maximum(a["max"], b["max"]).tolist(),
            "lo": [[np.minimum(x, y) for x, y in zip(u, v, strict=True)]
                   for u, v in zip(a["lo"], b["lo"], strict=True)],
            "hi": [[np.maximum(x, y) for x, y in zip(u, v, strict=True)]
                   for u, v in zip(a["hi"], b["hi"], strict=True)]}


def containment_df_rows(model: OocGlmmModel, pair_keys: dict) -> np.ndarray:
    """:func:`mixedfx.glmm.pql.containment_df` from one pass over the rows: grouping factors
    nested when each level of the inner one meets one level of the outer (the structure
    pass's distinct pairs), columns constant or varying within levels from their ranges."""
    p = len(model.fixed_names)
    by_group: dict[str, tuple[str, int]] = {}
    for code, t in zip(model.codes, model.engine_terms, strict=True):
        by_group.setdefault(t.group, (code, t.nlevels))
    levels = sorted(by_group.values(), key=lambda cn: cn[1])
    for (outer, _), (inner, n_inner) in zip(levels, levels[1:], strict=False):
        pairs = pair_keys.get((inner, outer), pair_keys.get((outer, inner)))
        if pairs is None or len(pairs) != n_inner:
            return np.full(p, np.nan)
    codes = tuple(c for c, _ in levels)
    sizes = tuple(n for _, n in levels)
    rows = model.rows
    r = rows.reduce(_ranges_chunk, _merge_ranges, rows.plan, codes, sizes)
    tol = np.sqrt(np.finfo(float).eps)
    lo_all, hi_all = np.asarray(r["min"]), np.asarray(r["max"])
    # nlme: constant when x / x[0] is 1 everywhere (or x is 0 everywhere)
    scale = np.maximum(np.abs(lo_all), np.abs(hi_all))
    constant = np.where(scale == 0, True, (hi_all - lo_all) <= tol * np.maximum(scale, 1e-300))
    varies = np.zeros((p, len(levels)), dtype=bool)
    for j in range(p):
        s = max(1.0, float(scale[j]))
        for k in range(len(levels)):
            span = r["hi"][j][k] - r["lo"][j][k]
            varies[j, k] = bool(np.any(span[np.isfinite(span)] > 1e-10 * s))
    return strata_df(model.nobs, list(sizes), constant, varies)


def pql_outofcore(formula: str, data: object, family, *, link: str | None = None,
                  weights=None, offset=None, control: dict | None = None,
                  data_name: str | None = None, threads: int | None = None,
                  memory_limit: str | None = None, chunk_rows: int | None = None,
                  timings: dict | None = None) -> PqlResult:
    """Fit a GLMM by PQL with the rows in a Parquet/DuckDB/Dask source (see
    :func:`mixedfx.glmm`, ``method="pql"``). Per-row fitted values, linear predictor and
    residuals are not held (``None``)."""
    settings = pql_settings(control)
    maxiter, tolerance = settings["maxiter"], settings["tolerance"]
    optimizer = settings["optimizer"]
    t0 = time.perf_counter()
    model, pair_keys = build_rows_model(formula, data, family, link=link, weights=weights,
                                        offset=offset, threads=threads,
                                        memory_limit=memory_limit, chunk_rows=chunk_rows)
    engine = OutOfCorePirls(model, True, pair_keys)  # beta free: X in the blocks
    p = len(model.fixed_names)
    beta, b = glm_beta_rows(model), engine.zero_modes()
    old = Params(mode="fixed", beta=beta)  # the GLM's eta, as glmmPQL starts
    theta, change, iterations, lmm = None, np.inf, 0, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for it in range(maxiter):
            iterations += 1
            caught.clear()
            engine._load(engine._pass(beta, b), it)
            working = AggregatedModel(model.formula, list(model.terms), model.fixed_names,
                                      engine.blocks, np.zeros(p), reml=False,
                                      n_dropped=model.n_dropped)
            lmm = working.fit(optimizer=optimizer, theta0=theta,
                              control=None if theta is None else {"initial_step": 0.05})
            theta = lmm.theta
            sol = working.solve(theta)
            beta, b = sol.beta, tuple(sol.b)
            new = Params(mode="mixed", beta=beta, b=b)
            out = model.rows.reduce(_eta_change_chunk, _add, model.rows.plan, old, new)
            change = out["diff"] / out["size"]
            old = new
            if change < tolerance:
                break
    converged = settle(caught, change, tolerance, maxiter, stacklevel=2)
    res = pql_result(lmm, model.family, containment_df_rows(model, pair_keys),
                     nobs=model.nobs, n_dropped=model.n_dropped, iterations=iterations,
                     converged=converged, change=change, dropped_columns=(),
                     data_name=data_name, model=None, eta=None, y=None)
    if timings is not None:
        timings.update(fit_s=time.perf_counter() - t0, passes=model.rows.passes)
    return res
