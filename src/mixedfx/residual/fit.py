"""``lmm(..., correlation=, variance=)``: data handling, optimization and the result."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from ..design.build import as_pandas, build_design, variables
from ..errors import ConvergenceWarning, DataError, MissingDataWarning
from ..formula import parse_formula
from ..lmm import _assemble, _rectify
from ..optimize import minimize, polish_optimum
from ..results import LmmResult
from ..start import STEP_RANGE
from .base import BoundCorrelation, BoundVariance, Structure
from .model import StructuredModel, StructureSource

STRUCT_STEP = 0.3  # initial step of the structure parameters (unconstrained scale)
MAX_OUTER = 50  # alternations for variance functions of the fitted values (nlme's maxIter)
OUTER_TOL = 1e-6


def _as_list(variance: object) -> list[Structure]:
    if variance is None:
        return []
    items = list(variance) if isinstance(variance, list | tuple) else [variance]
    for v in items:
        if not isinstance(v, Structure):
            raise TypeError(f"variance= takes mixedfx.VarIdent or mixedfx.VarPower (or a list "
                            f"of them), got {type(v).__name__}")
    return items


def _model_columns(parsed, weights: object, offset: object) -> list[str]:
    used: list[str] = []
    for expr in [parsed.response, parsed.fixed] + [t.expr for t in parsed.random]:
        used.extend(sorted(variables(expr, parsed.text)))
    for term in parsed.random:
        used.extend(term.factors)
    for extra in (weights, offset):
        if isinstance(extra, str):
            used.append(extra)
    return list(dict.fromkeys(used))


def _complete_rows(data: pd.DataFrame, columns: list[str]) -> np.ndarray:
    keep = np.ones(len(data), dtype=bool)
    for name in columns:
        if name in data.columns and data[name].hasnans:
            keep &= data[name].notna().to_numpy()
    return keep


def _subset_vector(arg: object, keep: np.ndarray, n_rows: int, what: str) -> object:
    if arg is None or isinstance(arg, str):
        return arg
    array = np.asarray(arg, dtype=float).ravel()
    if len(array) != n_rows:
        raise DataError(f"{what} has {len(array)} values but the data has {n_rows} rows; give "
                        "one value per row")
    return array[keep]


def _default_group(parsed) -> tuple[str, ...] | None:
    groups = {tuple(t.factors) for t in parsed.random}
    return next(iter(groups)) if len(groups) == 1 else None


def fit_structured(formula: str, data: object, *, reml: bool = True, weights: object = None,
                   offset: object = None, correlation: object = None, variance: object = None,
                   optimizer: str = "newuoa", control: dict | None = None,
                   data_name: str | None = None) -> LmmResult:
    """Fit an LMM with a structured residual covariance (see :func:`mixedfx.lmm`).

    Returns
    -------
    LmmResult
        With ``residual_params`` in nlme's parameterization; ``npar``, AIC and BIC count the
        structure parameters.
    """
    if correlation is not None and not isinstance(correlation, Structure):
        raise TypeError("correlation= takes mixedfx.AR1, mixedfx.CAR1 or mixedfx.CompSymm, "
                        f"got {type(correlation).__name__}")
    structures = ([correlation] if correlation is not None else []) + _as_list(variance)
    data = as_pandas(data)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise DataError("the formula has no random-effects term such as (1 | group)")
    struct_cols = list(dict.fromkeys(c for s in structures for c in s.columns()))
    for name in struct_cols:
        if name not in data.columns:
            kind = type(next(s for s in structures if name in s.columns())).__name__
            cols = ", ".join(map(str, list(data.columns)[:20]))
            raise DataError(f"{kind}: column '{name}' is not in the data; columns are: {cols}")
    keep = _complete_rows(data, _model_columns(parsed, weights, offset) + struct_cols)
    n_missing = int((~keep).sum())
    w = _subset_vector(weights, keep, len(data), "weights")
    off = _subset_vector(offset, keep, len(data), "offset")
    subset = data.loc[keep] if n_missing else data
    if n_missing:
        warnings.warn(f"{n_missing} row(s) with missing values in the model's or the residual "
                      "structure's columns were dropped", MissingDataWarning, stacklevel=3)
    design = build_design(parsed, subset, w, off)
    design = replace(design, n_dropped=n_missing)
    default = _default_group(parsed)
    frame_cols = list(dict.fromkeys(struct_cols + list(default or ())))
    frame = subset[frame_cols].reset_index(drop=True)
    corr = correlation.bind(frame, default) if correlation is not None else None
    if corr is not None and not isinstance(corr, BoundCorrelation):
        raise TypeError("correlation= needs a correlation structure (AR1, CAR1, CompSymm), "
                        f"got {type(correlation).__name__}")
    varf = [v.bind(frame, default) for v in structures[1 if corr is not None else 0 :]]
    for v, b in zip(structures[1 if corr is not None else 0 :], varf, strict=True):
        if not isinstance(b, BoundVariance):
            raise TypeError("variance= needs variance functions (VarIdent, VarPower), got "
                            f"{type(v).__name__}")
    source = StructureSource(correlation, tuple(structures[1 if corr is not None else 0 :]),
                             frame, default)
    model = StructuredModel(parsed.text, design, reml, corr, varf, source=source)
    return fit_model(model, optimizer=optimizer, control=control, data_name=data_name)


def _optimize(model: StructuredModel, x0: np.ndarray, optimizer: str, settings: dict):
    settings = dict(settings)
    polish = settings.pop("polish", False)  # Newton polish, as for lmm (LmmModel.optimize)
    lower = np.concatenate([model.lower, np.full(model.nstruct, -np.inf)])
    opt = minimize(model.internal_objective, x0, lower, optimizer=optimizer, **settings)
    if polish:
        opt = polish_optimum(opt, model.internal_objective,
                             None if optimizer == "newuoa" else lower,
                             **(polish if isinstance(polish, dict) else {}))
    return opt


def fit_model(model: StructuredModel, *, optimizer: str = "newuoa", control: dict | None = None,
              data_name: str | None = None, x0: np.ndarray | None = None) -> LmmResult:
    """Optimize [theta, structure parameters] and assemble the frozen result.

    Variance functions of the fitted values alternate as in nlme: optimize with the fitted
    values fixed, recompute them at the optimum, until the parameters change by less than
    1e-6.
    """
    settings = dict(control or {})
    how = settings.pop("start", "moments")
    start = model.start()
    if x0 is not None:
        start = model.to_internal(np.asarray(x0, float))
    elif how == "identity":
        start[: model.ntheta] = np.concatenate([t.theta_initial() for t in model.terms])
    elif how != "moments":
        raise ValueError(f"unknown start '{how}'; use 'moments' or 'identity'")
    if "initial_step" not in settings:
        step = STEP_RANGE[1] if how == "moments" else 0.75  # residual starts are rougher
        settings["initial_step"] = np.concatenate([np.full(model.ntheta, step),
                                                   np.full(model.nstruct, STRUCT_STEP)])
    needs_fitted = any(v.needs_fitted for v in model.variances)
    if needs_fitted:
        # at the start every power is 0, so the fitted values held fixed do not matter yet
        model = model.with_fitted(np.ones(len(model.design.y)))
        model = model.with_fitted(
            model.conditional_fitted(model.solve(model.from_internal(start))[0]))
    x, settled = start, not needs_fitted
    for _ in range(MAX_OUTER):
        opt = _optimize(model, x, optimizer, settings)
        x_new = np.asarray(opt.final)
        if not needs_fitted:
            break
        fitted = model.conditional_fitted(model.solve(model.from_internal(x_new))[0])
        change = float(np.max(np.abs(x_new - x)))
        x = x_new
        if change < OUTER_TOL:
            settled = True
            break
        model = model.with_fitted(fitted)
    if not settled:
        warnings.warn(f"the alternation between the variance function and the fitted values "
                      f"did not settle in {MAX_OUTER} rounds: the estimates may be off; check "
                      "the model", ConvergenceWarning, stacklevel=3)
    z = np.asarray(opt.final).copy()
    if optimizer == "newuoa":
        z[: model.ntheta] = _rectify(z[: model.ntheta], model.terms)
    return assemble(model, model.from_internal(z), opt, data_name)


def assemble(model: StructuredModel, x: np.ndarray, opt, data_name: str | None) -> LmmResult:
    """The frozen result at x: the engine's assembly plus the structure's parameters."""
    theta, _ = model.split(x)
    sol, blocks = model.solve(x)
    res = _assemble(model.engine_view(blocks), theta, sol, opt, data_name)
    npar = res.npar + model.nstruct
    v = model.residual_sd(x)
    pearson = res.residuals * np.sqrt(model.design.weights) / (res.sigma * v)
    return replace(res, npar=npar, aic=-2 * res.loglik + 2 * npar,
                   bic=-2 * res.loglik + np.log(res.nobs) * npar,
                   residual_params=model.residual_params(x), scaled_residuals=pearson,
                   model=model)
