"""Two decompositions of the response's variation: ANOVA's and the mixed model's.

:func:`anova_table` is the sequential (type I) analysis of variance of the fixed-effects
linear model in which every grouping factor is a set of dummy columns, as R's
``anova(lm(...))``: each term's sum of squares is what it adds after the terms before it, so
on unbalanced data it depends on the order of the terms. :func:`variance_decomposition`
reads the variance components of a fitted mixed model, which are estimated jointly and do not
depend on the order of the terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import qr

from ..design.build import (
    _materialize,
    _response,
    as_pandas,
    grouping_codes,
    variables,
)
from ..errors import DataError, FormulaError
from ..formula import parse_formula

RANK_TOL = 1e-7  # as R's lm (qr tol): a column is aliased below this fraction of its norm


@dataclass(frozen=True)
class _Term:
    label: str
    degree: int
    columns: np.ndarray


def _fixed_terms(expr: str, frame: pd.DataFrame, formula: str) -> tuple[bool, list[_Term]]:
    """Intercept flag and the fixed part's terms (formulaic's, in R's degree order)."""
    from formulaic import model_matrix

    from ..design.functions import FORMULA_CONTEXT, r_powers

    try:
        mm = model_matrix(r_powers(expr), frame, context=FORMULA_CONTEXT)
    except Exception as exc:  # formulaic's errors
        raise FormulaError(f"cannot build the model matrix of '{expr}': {exc}", formula,
                           formula.find(expr)) from exc
    values = mm.to_numpy(dtype=float)
    intercept, terms = False, []
    for term, cols in mm.model_spec.term_indices.items():
        label = str(term)
        if label == "1":
            intercept = True
            continue
        terms.append(_Term(label, len(term.factors), values[:, cols]))
    return intercept, terms


def _group_terms(parsed, frame: pd.DataFrame) -> list[_Term]:
    """Each random term (expr | g) as fixed dummies: g, and col:g for each other column."""
    terms = []
    for rt in parsed.random:
        codes, levels = grouping_codes(frame, rt.factors)
        dummies = np.zeros((len(frame), len(levels)))
        dummies[np.arange(len(frame)), codes] = 1.0
        mm = _materialize(rt.expr, frame, parsed.text)
        names = [str(c) for c in mm.columns]
        if "Intercept" in names:
            terms.append(_Term(rt.group, len(rt.factors), dummies))
        for k, col in enumerate(names):
            if col == "Intercept":
                continue
            terms.append(_Term(f"{col}:{rt.group}", 1 + len(rt.factors),
                               mm.values[:, [k]] * dummies))
    return terms


def _add(Q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the part of span(X) not in span(Q) (rank by R's tolerance)."""
    norms = np.linalg.norm(X, axis=0)
    R = X - Q @ (Q.T @ X)
    R = R - Q @ (Q.T @ R)  # twice is enough (Gram-Schmidt re-orthogonalization)
    if R.shape[1] == 0:
        return np.zeros((X.shape[0], 0))
    q, r, piv = qr(R, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > RANK_TOL * np.maximum(norms[piv], 1e-300)))
    return q[:, :rank]


def anova_table(formula: str, data: object) -> pd.DataFrame:
    """Sequential (type I) ANOVA of the fixed-effects linear model with groups as dummies.

    The mixed-model formula's fixed part is kept as it is; each random term ``(expr | g)``
    becomes the factor ``g`` (dummy columns) and, for each non-intercept column ``x`` of
    ``expr``, the interaction ``x:g``. Terms are taken in R's order (by degree, then as
    written), so the table equals R's ``anova(lm(y ~ fixed + g + x:g, data))``.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"y ~ x + (1 | a) + (1 | b)"`` (the fixed part alone works too).
    data : pandas.DataFrame or polars.DataFrame
        Never modified; rows with missing values in used columns are dropped.

    Returns
    -------
    pandas.DataFrame
        Indexed by term, then ``Residuals``: ``df, sum_sq, mean_sq, F, p_value`` (NaN F and
        p for the residual row). Terms wholly aliased with earlier ones (no new degrees of
        freedom) are left out, as R does.
    """
    parsed = parse_formula(formula)
    data = as_pandas(data)
    used: list[str] = []
    for expr in [parsed.response, parsed.fixed] + [t.expr for t in parsed.random]:
        used.extend(sorted(variables(expr, parsed.text)))
    for t in parsed.random:
        used.extend(t.factors)
    used = list(dict.fromkeys(used))
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise DataError(f"column '{missing[0]}' used in the formula '{formula}' is not in the "
                        f"data; columns are: {', '.join(map(str, data.columns[:20]))}")
    frame = data[used].dropna().reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"no complete rows in the columns {', '.join(used)}")
    y = _response(parsed.response, frame, parsed.text)
    intercept, terms = _fixed_terms(parsed.fixed, frame, parsed.text)
    terms = terms + _group_terms(parsed, frame)
    terms = sorted(terms, key=lambda t: t.degree)  # stable: R's order of terms
    n = len(y)
    Q = np.ones((n, 1)) / np.sqrt(n) if intercept else np.zeros((n, 0))
    rows = []
    for t in terms:
        q = _add(Q, t.columns)
        if q.shape[1] == 0:
            continue
        rows.append((t.label, q.shape[1], float(np.sum((q.T @ y) ** 2))))
        Q = np.hstack([Q, q])
    resid = y - Q @ (Q.T @ y)
    df_res = n - Q.shape[1]
    if df_res <= 0:
        raise DataError(f"the model has {Q.shape[1]} independent columns for {n} observations: "
                        "no residual degrees of freedom are left for an ANOVA table")
    ss_res = float(resid @ resid)
    ms_res = ss_res / df_res
    labels = [r[0] for r in rows] + ["Residuals"]
    df = np.array([r[1] for r in rows] + [df_res], dtype=float)
    ss = np.array([r[2] for r in rows] + [ss_res])
    ms = ss / df
    F = np.append(ms[:-1] / ms_res, np.nan)
    p = np.append(stats.f.sf(F[:-1], df[:-1], df_res), np.nan)
    return pd.DataFrame({"df": df, "sum_sq": ss, "mean_sq": ms, "F": F, "p_value": p},
                        index=pd.Index(labels, dtype=object))


@dataclass(frozen=True, eq=False)
class VarianceDecomposition:
    """Variance components of a fitted mixed model and their shares.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per variance (``group``, ``term``, ``variance``, ``sd``, ``share``), the
        residual last. ``share`` is the fraction of the total variance of an observation at
        covariates zero: random-intercept variances and the residual variance (their sum is
        ``total``); random-slope variances have no share (NaN): theirs depends on the
        covariate's value.
    total : float
        Sum of the random-intercept variances and the residual variance.
    icc : pandas.Series
        Intraclass correlation per grouping factor with a random intercept: its variance over
        ``total`` (the correlation of two observations sharing only that level).
    """

    table: pd.DataFrame
    total: float
    icc: pd.Series

    def __str__(self) -> str:
        shown = self.table.copy()
        return shown.to_string(float_format=lambda v: f"{v:.6g}", na_rep="")

    def to_dict(self) -> dict:
        """JSON-serializable form."""
        rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v)
                 for k, v in r.items()} for r in self.table.to_dict("records")]
        return {"table": rows, "total": float(self.total),
                "icc": {k: float(v) for k, v in self.icc.items()}}


def variance_decomposition(res) -> VarianceDecomposition:
    """Each variance component of a fit, its share of the total variance and the ICC.

    Parameters
    ----------
    res : LmmResult

    Returns
    -------
    VarianceDecomposition
    """
    vc = res.varcorr
    var = vc[vc.term2.isna()]
    group = var.group.to_numpy(dtype=object)
    term = np.array([("" if pd.isna(t) else t) for t in var.term1], dtype=object)
    variance = var.vcov.to_numpy(dtype=float)
    counted = (term == "(Intercept)") | (group == "Residual")
    total = float(variance[counted].sum())
    share = np.where(counted, variance / total, np.nan)
    table = pd.DataFrame({"group": pd.Series(group, dtype=object),
                          "term": pd.Series(term, dtype=object), "variance": variance,
                          "sd": np.sqrt(variance), "share": share})
    ints = (term == "(Intercept)") & (group != "Residual")
    icc = pd.Series(variance[ints] / total, index=pd.Index(group[ints], dtype=object),
                    name="icc")
    return VarianceDecomposition(table=table, total=total, icc=icc)
