"""Satterthwaite denominator degrees of freedom of contrasts and F tests (lmerTest's).

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
from scipy import stats

from .varpar import VarparFunctions, varpar_derivatives

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
    H, jac, vcov = varpar_derivatives(fun, np.asarray(res.theta, float), float(res.sigma))
    try:
        np.linalg.cholesky(H)
        A = 2 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        warnings.warn("the Hessian of the deviance in (theta, sigma) is not positive definite "
                      "(a boundary fit?): Satterthwaite df use its pseudo-inverse",
                      RuntimeWarning, stacklevel=3)
        A = 2 * np.linalg.pinv(H)
    parts = SatterthwaiteParts(vcov=vcov, jac=jac, A=A)
    _CACHE[res] = parts
    return parts


def contrast_df(parts: SatterthwaiteParts, L: np.ndarray) -> float:
    """Satterthwaite df of the single contrast L'beta."""
    L = np.asarray(L, float).ravel()
    v = float(L @ parts.vcov @ L)
    g = np.array([float(L @ J @ L) for J in parts.jac])
    denom = float(g @ parts.A @ g)
    return 2 * v * v / denom if denom > 0 else np.inf


def combined_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F test from the df of its orthogonal single-df contrasts, as
    lmerTest's ``get_Fstat_ddf``: nu for one contrast, their mean when all are equal, 2
    when any is at most 2, else 2E / (E - q) with E = sum nu / (nu - 2)."""
    nu = np.asarray(nu, float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


def f_test(parts: SatterthwaiteParts, L: np.ndarray, beta: np.ndarray) -> dict:
    """F test of L beta = 0 (rows of L), as lmerTest's ``contestMD``."""
    L = np.atleast_2d(np.asarray(L, float))
    beta = np.asarray(beta, float)
    V = L @ parts.vcov @ L.T
    evals, P = np.linalg.eigh(V)
    keep = evals > 1e-12 * max(evals.max(), 1e-300)
    evals, P = evals[keep], P[:, keep]
    q = len(evals)
    PL = P.T @ L
    t2 = (PL @ beta) ** 2 / evals
    F = float(t2.sum() / q)
    ddf = combined_df(np.array([contrast_df(parts, row) for row in PL]))
    return {"F": F, "num_df": q, "den_df": ddf, "p_value": float(stats.f.sf(F, q, ddf))
            if np.isfinite(ddf) else np.nan}
