"""Predictions of a fitted mixed model, on the fitted data or on new data.

Three kinds of prediction, as the literature names them:

* ``conditional``: the linear predictor with the conditional modes (BLUPs) of the random
  effects of the levels in the data, g^-1(x'beta + z'b); lme4's ``predict(m)``.
* ``fixed``: the random effects set to zero, g^-1(x'beta); lme4's ``re.form=NA``.
* ``marginal``: the population mean E[g^-1(x'beta + z'u)] with u ~ N(0, G), integrated over
  the random effects (:mod:`mixedfx.marginal`). For the identity link it equals ``fixed``;
  for other links it does not (a logit model's marginal probabilities are flatter than its
  fixed-effects curve).

New data get the fixed-effects design of the fit (the same formulaic model spec: factor
levels, contrasts, stateful transforms) and the random effects of their levels by lookup.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import model_matrix

from .design.build import _plain_numeric, as_pandas, variables
from .design.functions import FORMULA_CONTEXT, r_powers
from .design.names import r_name
from .errors import DataError
from .formula import parse_formula

KINDS = ("conditional", "fixed", "marginal")
SCALES = ("response", "link")


@dataclass(frozen=True, eq=False)
class TermPrediction:
    """What prediction needs of one random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        The term's model formula (``"1 + Days"``).
    factors : tuple of str
        Data columns whose interaction is the grouping factor.
    columns : tuple of str
        The term's column names (R spelling).
    levels : tuple of str
        Levels of the grouping factor in the fitted data.
    modes : numpy.ndarray
        Conditional modes, shape (levels, columns).
    cov : numpy.ndarray
        Covariance matrix G of the term's random effects (columns x columns).
    """

    expr: str
    factors: tuple[str, ...]
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    modes: np.ndarray
    cov: np.ndarray
    codes: np.ndarray
    Z: np.ndarray

    @property
    def group(self) -> str:
        """Grouping factor name as lme4 prints it."""
        return ":".join(self.factors)


@dataclass(frozen=True, eq=False)
class PredictionModel:
    """A fitted model reduced to what prediction needs (built from a result).

    Attributes
    ----------
    formula : str
        The model formula.
    fixed_expr : str
        Right-hand side of the fixed-effects part.
    fixed_names : tuple of str
        Names of the estimated fixed effects (aliased columns dropped).
    beta : numpy.ndarray
        Fixed-effects estimates in the order of ``fixed_names``.
    X : numpy.ndarray
        Fixed-effects model matrix of the fitted data (columns of ``fixed_names``).
    offset : numpy.ndarray
        Offset of the fitted data.
    terms : tuple of TermPrediction
        Random-effects terms.
    frame : pandas.DataFrame
        Model frame of the fit (the used columns of the rows kept).
    link : object or None
        Link with ``linkinv(eta)`` and ``linkfun(mu)`` (and a ``name``), None for identity.
    """

    formula: str
    fixed_expr: str
    fixed_names: tuple[str, ...]
    beta: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    terms: tuple[TermPrediction, ...]
    frame: pd.DataFrame
    link: object = None
    specs: dict = field(default_factory=dict, repr=False)


def term_covariances(varcorr: pd.DataFrame, dims: list[int]) -> list[np.ndarray]:
    """Covariance matrix of each random-effects term from a ``varcorr`` table.

    ``varcorr`` lists, term by term in the order of ``dims``, the term's variances and then
    its covariances (pairs a < b, by a then b) in the ``vcov`` column, as lme4's
    ``as.data.frame(VarCorr(m))`` does.
    """
    vcov = varcorr["vcov"].to_numpy(dtype=float)
    out, pos = [], 0
    for d in dims:
        G = np.diag(vcov[pos : pos + d])
        pos += d
        for a in range(d):
            for b in range(a + 1, d):
                G[a, b] = G[b, a] = vcov[pos]
                pos += 1
        out.append(G)
    return out


def _split_modes(ranef: dict, terms: list) -> list[np.ndarray]:
    """Per-term conditional modes from ``ranef`` (one frame per grouping factor, the
    columns of its terms side by side in display order)."""
    used: dict[str, int] = {}
    out = []
    for t in terms:
        start = used.get(t.group, 0)
        out.append(ranef[t.group].to_numpy(dtype=float)[:, start : start + t.dim])
        used[t.group] = start + t.dim
    return out


def from_fit(formula: str, model, fixef: pd.Series, varcorr: pd.DataFrame, ranef: dict,
             link: object = None) -> PredictionModel:
    """Build a :class:`PredictionModel` from a fitted model's pieces.

    Parameters
    ----------
    formula : str
        The formula as fitted.
    model : object
        The fitted model: ``design`` (a ModelDesign, terms in formula order), ``terms``
        (the same ReTerm objects in display order), ``X`` and ``fixed_names``.
    fixef, varcorr, ranef :
        The result's estimates (``varcorr`` in display order of the terms).
    link : object, optional
        Link object for GLMMs; None for the identity.
    """
    parsed = parse_formula(formula)
    by_id = {id(rt): pt for rt, pt in zip(model.design.terms, parsed.random, strict=True)}
    covs = term_covariances(varcorr, [t.dim for t in model.terms])
    modes = _split_modes(ranef, model.terms)
    terms = tuple(
        TermPrediction(expr=by_id[id(t)].expr, factors=by_id[id(t)].factors, columns=t.columns,
                       levels=t.levels, modes=m, cov=G, codes=t.codes, Z=t.Z)
        for t, m, G in zip(model.terms, modes, covs, strict=True))
    beta = fixef[list(model.fixed_names)].to_numpy(dtype=float)
    return PredictionModel(formula=formula, fixed_expr=parsed.fixed,
                           fixed_names=tuple(model.fixed_names), beta=beta, X=model.X,
                           offset=model.design.offset, terms=terms, frame=model.design.frame,
                           link=link)


# ---------------------------------------------------------------------------------------
# new data: columns, factor levels, model matrices


_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached(result: object, build) -> PredictionModel:
    """The result's :class:`PredictionModel`, built once by ``build()`` and kept as long as
    the result lives (results are frozen, so it is held here rather than on them)."""
    pm = _MODELS.get(result)
    if pm is None:
        pm = _MODELS[result] = build()
    return pm


def _spec(pm: PredictionModel, expr: str):
    """formulaic's model spec of ``expr`` on the fitted frame (kept on ``pm``)."""
    if expr not in pm.specs:
        pm.specs[expr] = model_matrix(r_powers(expr), pm.frame,
                                      context=FORMULA_CONTEXT).model_spec
    return pm.specs[expr]


def _matrix(pm: PredictionModel, expr: str, newdata: pd.DataFrame,
            names: tuple[str, ...], what: str) -> np.ndarray:
    """Model matrix of ``expr`` for ``newdata`` with the fit's spec, columns ``names``."""
    if _plain_numeric(expr, pm.frame) is not None:
        fast = _plain_numeric(expr, newdata)
        if fast is not None:
            cols = tuple(r_name(c) for c in fast.columns)
            return fast.values[:, [cols.index(n) for n in names]]
    try:
        mm = _spec(pm, expr).get_model_matrix(newdata, context=FORMULA_CONTEXT)
    except Exception as exc:  # formulaic's evaluation errors
        raise DataError(f"cannot build the model matrix of '{expr}' ({what}) for the new "
                        f"data: {exc}") from exc
    cols = [r_name(str(c)) for c in mm.columns]
    values = mm.to_numpy(dtype=float)
    if len(values) != len(newdata):
        raise DataError(f"the new data gave {len(values)} rows for '{expr}' instead of "
                        f"{len(newdata)}; check the columns used by '{expr}' for missing or "
                        "invalid values")
    missing = [n for n in names if n not in cols]
    if missing:
        raise DataError(f"the new data do not give the model's column(s) {', '.join(missing)} "
                        f"of '{expr}'")
    return values[:, [cols.index(n) for n in names]]


def _categories(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    return sorted(pd.unique(col.dropna()), key=str)


def _align_factor(name: str, fit_col: pd.Series, new_col: pd.Series) -> pd.Series:
    """New data's values of a factor column as a categorical with the fit's levels,
    matched by their text (so ``308`` and ``"308"`` are the same level)."""
    cats = _categories(fit_col)
    missing = new_col.isna().to_numpy()
    codes = pd.Index([str(c) for c in cats]).get_indexer(new_col.astype(str).to_numpy())
    codes[missing] = -1
    if np.any((codes < 0) & ~missing):
        unseen = sorted(set(new_col[(codes < 0) & ~missing].astype(str)))
        shown = ", ".join(unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        raise DataError(f"column '{name}' of the new data has level(s) {shown} not seen in "
                        f"the fit (levels: {', '.join(map(str, cats[:10]))}"
                        f"{' ...' if len(cats) > 10 else ''}); a fixed effect cannot be "
                        "predicted for an unseen level")
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats), index=new_col.index,
                     name=name)


def _is_factor(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSU" or \
        pd.api.types.is_string_dtype(col.dtype)


@dataclass(frozen=True, eq=False)
class _Rows:
    """Rows to predict: fixed-effects matrix, offset, per-term (Z, level index or -1)."""

    X: np.ndarray
    offset: np.ndarray
    Z: list[np.ndarray]
    index: list[np.ndarray]


def _fitted_rows(pm: PredictionModel) -> _Rows:
    return _Rows(pm.X, pm.offset, [t.Z for t in pm.terms], [t.codes for t in pm.terms])


def _level_index(term: TermPrediction, frame: pd.DataFrame) -> np.ndarray:
    """Index of each row's level among the term's fitted levels, -1 for unseen levels."""
    labels = _labels(term, frame)
    lookup = pd.Index(np.asarray(term.levels, dtype=object))
    return lookup.get_indexer(pd.Index(np.asarray(labels, dtype=object)))


def _needed_columns(pm: PredictionModel, kind: str) -> tuple[list[str], set[str]]:
    """Columns of the fit's frame a prediction uses, and those that enter model matrices."""
    parsed = parse_formula(pm.formula)
    matrix_vars = set(variables(parsed.fixed, pm.formula))
    if kind != "fixed":  # z columns: for the modes (conditional) or the variance (marginal)
        for t in pm.terms:
            matrix_vars |= variables(t.expr, pm.formula)
    factor_vars = {f for t in pm.terms for f in t.factors} if kind == "conditional" else set()
    needed = [c for c in pm.frame.columns if c in matrix_vars | factor_vars]
    return needed, matrix_vars


def _new_rows(pm: PredictionModel, newdata: pd.DataFrame, offset: np.ndarray | None,
              allow_new_levels: bool, kind: str) -> _Rows:
    needed, matrix_vars = _needed_columns(pm, kind)
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise DataError(f"the new data lack the column(s) {', '.join(missing)} used by the "
                        f"model '{pm.formula}'; add them to newdata")
    frame = newdata[needed].copy()
    for c in needed:
        if c in matrix_vars and _is_factor(pm.frame[c]):
            frame[c] = _align_factor(c, pm.frame[c], frame[c])
    X = _matrix(pm, pm.fixed_expr, frame, pm.fixed_names, "fixed effects")
    Z, index = [], []
    unseen_msgs: list[str] = []
    for t in pm.terms if kind != "fixed" else ():
        Z.append(_matrix(pm, t.expr, frame, t.columns, f"random term ({t.expr} | {t.group})"))
        if kind == "conditional":
            idx = _level_index(t, frame)
            if np.any(idx < 0) and not allow_new_levels:
                new = pd.unique(_labels(t, frame)[idx < 0])
                shown = ", ".join(map(str, new[:10])) + (" ..." if len(new) > 10 else "")
                unseen_msgs.append(f"'{t.group}': {shown}")
            index.append(idx)
    if unseen_msgs:
        raise DataError("the new data have levels not seen in the fit for grouping factor "
                        f"{'; '.join(unseen_msgs)}. Pass allow_new_levels=True to predict "
                        "them at the population level (random effects zero)")
    if offset is None:
        if np.any(pm.offset != 0):
            raise DataError("the model was fitted with an offset: give the new data's offset "
                            "with predict(newdata, offset=...)")
        off = np.zeros(len(frame))
    else:
        off = np.broadcast_to(np.asarray(offset, dtype=float), (len(frame),)).copy()
    return _Rows(X, off, Z, index)


def _labels(term: TermPrediction, frame: pd.DataFrame) -> np.ndarray:
    parts = [frame[f].astype(str).to_numpy(dtype=object) for f in term.factors]
    labels = parts[0]
    for p in parts[1:]:
        labels = labels + ":" + p
    return labels


# ---------------------------------------------------------------------------------------
# the predictions


def _random_part(pm: PredictionModel, rows: _Rows) -> np.ndarray:
    """z'b for each row; zero for terms whose level was not in the fit."""
    out = np.zeros(len(rows.X))
    for t, Z, idx in zip(pm.terms, rows.Z, rows.index, strict=True):
        seen = idx >= 0
        out[seen] += np.einsum("ij,ij->i", Z[seen], t.modes[idx[seen]])
    return out


def _random_variance(pm: PredictionModel, rows: _Rows) -> np.ndarray:
    """Variance of z'u for each row: the sum over terms of z_k' G_k z_k."""
    out = np.zeros(len(rows.X))
    for t, Z in zip(pm.terms, rows.Z, strict=True):
        out += np.einsum("ij,jk,ik->i", Z, t.cov, Z)
    return out


def predict(pm: PredictionModel, newdata: object = None, *, kind: str = "conditional",
            scale: str = "response", allow_new_levels: bool = False,
            offset: object = None) -> pd.Series:
    """Predictions of a fitted model (see :meth:`mixedfx.LmmResult.predict`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind '{kind}'; use one of {', '.join(KINDS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale '{scale}'; use one of {', '.join(SCALES)}")
    name = f"{kind}_{scale}"
    if kind == "marginal" and pm.link is None:
        kind = "fixed"  # identity link: the population mean is x'beta
    if newdata is None:
        if offset is not None:
            raise ValueError("offset= applies to newdata; the fitted data use the fit's offset")
        rows, index = _fitted_rows(pm), pd.RangeIndex(len(pm.X))
        keep = np.ones(len(pm.X), dtype=bool)
    else:
        data = as_pandas(newdata)
        index = data.index
        rows, keep = _complete_rows(pm, data, offset, allow_new_levels, kind)
    eta = rows.X @ pm.beta + rows.offset
    if kind == "conditional":
        eta = eta + _random_part(pm, rows)
    if kind == "marginal" and pm.link is not None:
        from .marginal import marginal_mean

        mu = marginal_mean(pm.link, eta, _random_variance(pm, rows))
        values = mu if scale == "response" else np.asarray(pm.link.linkfun(mu), dtype=float)
    elif scale == "response" and pm.link is not None:
        values = np.asarray(pm.link.linkinv(eta), dtype=float)
    else:
        values = eta
    out = np.full(len(keep), np.nan)
    out[keep] = values
    return pd.Series(out, index=index, name=name)


def _complete_rows(pm: PredictionModel, data: pd.DataFrame, offset: object,
                   allow_new_levels: bool, kind: str) -> tuple[_Rows, np.ndarray]:
    """Rows of the new data without missing values in the model's columns (the others get
    NaN predictions, as R's ``na.action = na.pass``)."""
    needed, _ = _needed_columns(pm, kind)
    cols = [c for c in needed if c in data.columns]
    keep = data[cols].notna().all(axis=1).to_numpy().copy()
    off = None
    if offset is not None:
        if isinstance(offset, str):
            if offset not in data.columns:
                raise DataError(f"offset column '{offset}' is not in the new data")
            off = data[offset].to_numpy(dtype=float)
        else:
            off = np.broadcast_to(np.asarray(offset, dtype=float), (len(data),))
        keep = keep & np.isfinite(off)
        off = off[keep]
    return _new_rows(pm, data.loc[keep], off, allow_new_levels, kind), keep
