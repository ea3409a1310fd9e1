"""Satterthwaite denominator degrees of freedom, t and F tests of fixed effects (lmerTest's).

For a contrast L'beta the variance is v(varpar) = L' sigma^2 (R_X'R_X)^{-1}(theta) L. With
A the asymptotic covariance of varpar = (theta, sigma) (twice the inverse Hessian of the
deviance) and g the gradient of v,

    df = 2 v^2 / (g' A g),

which is Satterthwaite's approximation as lmerTest computes it. A multi-row contrast L
(an F test) is split into orthogonal single-df contrasts by the eigen-decomposition of
L V L' and the df combined as in lmerTest's ``contestMD``.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .varpar import VarparFunctions, hessian, jacobian

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class SatterthwaiteParts:
    """What every Satterthwaite df of one fit needs, computed once.

    Attributes
    ----------
    vcov : numpy.ndarray
        Covariance of beta at the estimates (p, p).
    jac : list of numpy.ndarray
        d vcov / d varpar_k for each variance parameter (theta..., sigma).
    A : numpy.ndarray
        Asymptotic covariance of varpar: 2 H^{-1}.
    """

    vcov: np.ndarray
    jac: list
    A: np.ndarray


def satterthwaite_parts(res) -> SatterthwaiteParts:
    """Derivatives of the deviance and of vcov(beta) at the estimates (cached per result)."""
    cached = _CACHE.get(res)
    if cached is not None:
        return cached
    fun = VarparFunctions(res.model)
    varpar = np.append(np.asarray(res.theta, float), float(res.sigma))
    H = hessian(fun.deviance, varpar)
    try:
        np.linalg.cholesky(H)
        A = 2 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        warnings.warn("the Hessian of the deviance in (theta, sigma) is not positive definite "
                      "(a boundary fit?): Satterthwaite df use its pseudo-inverse",
                      RuntimeWarning, stacklevel=3)
        A = 2 * np.linalg.pinv(H)
    jac = jacobian(fun.vcov_beta, varpar)
    parts = SatterthwaiteParts(vcov=fun.vcov_beta(varpar), jac=jac, A=A)
    _CACHE[res] = parts
    return parts


def contrast_df(parts: SatterthwaiteParts, L: np.ndarray) -> float:
    """Satterthwaite df of the single contrast L'beta."""
    L = np.asarray(L, float).ravel()
    v = float(L @ parts.vcov @ L)
    g = np.array([float(L @ J @ L) for J in parts.jac])
    denom = float(g @ parts.A @ g)
    return 2 * v * v / denom if denom > 0 else np.inf


def f_test(res, parts: SatterthwaiteParts, L: np.ndarray) -> dict:
    """F test of L beta = 0 (rows of L), as lmerTest's ``contestMD``."""
    L = np.atleast_2d(np.asarray(L, float))
    beta = res.fixef.to_numpy(float)
    V = L @ parts.vcov @ L.T
    evals, P = np.linalg.eigh(V)
    keep = evals > 1e-12 * max(evals.max(), 1e-300)
    evals, P = evals[keep], P[:, keep]
    q = len(evals)
    PL = P.T @ L
    t2 = (PL @ beta) ** 2 / evals
    F = float(t2.sum() / q)
    nu = np.array([contrast_df(parts, row) for row in PL])
    E = float(np.sum(np.where(nu > 2, nu / (nu - 2), 0.0)))
    ddf = 2 * E / (E - q) if E > q else np.nan
    return {"F": F, "num_df": q, "den_df": ddf, "p_value": float(stats.f.sf(F, q, ddf))
            if np.isfinite(ddf) else np.nan}


def coef_table(res, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed effects with t tests: estimate, std_error, df, statistic, p_value.

    Parameters
    ----------
    res : LmmResult
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}
        Satterthwaite as lmerTest; Kenward-Roger as pbkrtest (adjusted standard errors);
        asymptotic: z tests (infinite df).
    """
    method = ddf.lower().replace("_", "-")
    est = res.fixef.to_numpy(float)
    if method == "asymptotic":
        se = res.se.to_numpy(float)
        df = np.full(len(est), np.inf)
    elif method == "satterthwaite":
        parts = satterthwaite_parts(res)
        se = np.sqrt(np.diag(parts.vcov))
        df = np.array([contrast_df(parts, row) for row in np.eye(len(est))])
    elif method in ("kenward-roger", "kr"):
        from .kenward_roger import kenward_roger_parts

        kr = kenward_roger_parts(res)
        se = np.sqrt(np.diag(kr.vcov_adjusted))
        df = np.array([kr.single_df(row) for row in np.eye(len(est))])
    else:
        raise ValueError(f"unknown ddf '{ddf}'; use 'satterthwaite', 'kenward-roger' or "
                         "'asymptotic'")
    t = est / se
    p = 2 * stats.t.sf(np.abs(t), df)
    return pd.DataFrame({"estimate": est, "std_error": se, "df": df, "statistic": t,
                         "p_value": p}, index=res.fixef.index)


def term_columns(res) -> dict[str, list[int]]:
    """Columns of the fixed-effects matrix belonging to each term of the formula, in R's
    term labels (``Days``, ``period``, ``recipe:temperature``); the intercept excluded."""
    from formulaic import model_matrix

    from ..design.functions import FORMULA_CONTEXT, r_powers
    from ..design.names import r_name
    from ..formula import parse_formula

    parsed = parse_formula(res.formula)
    frame = res.model.design.frame
    mm = model_matrix(r_powers(parsed.fixed), frame, context=FORMULA_CONTEXT)
    names = [r_name(str(c)) for c in mm.columns]
    position = {n: k for k, n in enumerate(res.fixef.index)}
    out: dict[str, list[int]] = {}
    for term, idx in mm.model_spec.term_indices.items():
        label = str(term)
        if label == "1":
            continue
        cols = [position[names[i]] for i in idx if names[i] in position]
        if cols:
            out[label] = cols
    return out


def anova(res, ddf: str = "satterthwaite") -> pd.DataFrame:
    """F tests of each fixed-effect term (all its coefficients zero), as lmerTest's anova.

    Returns
    -------
    pandas.DataFrame
        Indexed by term: ``sum_sq, mean_sq, num_df, den_df, F, p_value`` (sums of squares on
        lmerTest's scale: mean_sq = F sigma^2).

    Notes
    -----
    Each term's hypothesis sets all of its columns to zero. This is lmerTest's type III test
    for terms not contained in an interaction (and for any term under sum-to-zero
    contrasts); for a main effect that also appears in an interaction under treatment
    contrasts, it tests the effect at the reference level of the other factor.
    """
    method = ddf.lower().replace("_", "-")
    p = len(res.fixef)
    rows = {}
    parts = satterthwaite_parts(res) if method == "satterthwaite" else None
    for label, cols in term_columns(res).items():
        L = np.eye(p)[cols]
        if method == "satterthwaite":
            test = f_test(res, parts, L)
        elif method in ("kenward-roger", "kr"):
            from .kenward_roger import kenward_roger_parts

            test = kenward_roger_parts(res).f_test(L, res.fixef.to_numpy(float))
        elif method == "asymptotic":
            beta = res.fixef.to_numpy(float)[cols]
            V = res.vcov.to_numpy(float)[np.ix_(cols, cols)]
            F = float(beta @ np.linalg.solve(V, beta) / len(cols))
            test = {"F": F, "num_df": len(cols), "den_df": np.inf,
                    "p_value": float(stats.chi2.sf(F * len(cols), len(cols)))}
        else:
            raise ValueError(f"unknown ddf '{ddf}'; use 'satterthwaite', 'kenward-roger' or "
                             "'asymptotic'")
        mean_sq = test["F"] * res.sigma**2
        rows[label] = {"sum_sq": mean_sq * test["num_df"], "mean_sq": mean_sq,
                       "num_df": test["num_df"], "den_df": test["den_df"], "F": test["F"],
                       "p_value": test["p_value"]}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["sum_sq", "mean_sq", "num_df", "den_df", "F",
                                           "p_value"])
