"""Rank check of the fixed-effects model matrix from its cross-product."""

from __future__ import annotations

import warnings

import numpy as np

from .errors import RankDeficiencyWarning


def aliased_columns(XtX: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns that are (numerically) linear combinations of earlier ones.

    A Cholesky factorization of X'WX without pivoting: column j is aliased when the part of
    it not explained by the kept columns before it has squared norm below
    ``tol`` times its own. Works from the cross-product alone, so out-of-core designs use it.
    """
    p = XtX.shape[0]
    kept: list[int] = []
    L = np.zeros((p, p))
    dropped = []
    for j in range(p):
        if kept:
            lk = np.linalg.solve(L[np.ix_(kept, kept)], XtX[kept, j]) if kept else np.zeros(0)
            resid = XtX[j, j] - lk @ lk
        else:
            lk, resid = np.zeros(0), XtX[j, j]
        if XtX[j, j] <= 0 or resid <= tol * XtX[j, j]:
            dropped.append(j)
            continue
        L[j, kept] = lk
        L[j, j] = np.sqrt(resid)
        kept.append(j)
    return dropped


def drop_aliased(X: np.ndarray, names: tuple[str, ...], weights: np.ndarray
                 ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Drop aliased columns of X with a warning naming them, as lme4 does."""
    Xw = X * np.sqrt(weights)[:, None]
    dropped = aliased_columns(Xw.T @ Xw)
    if not dropped:
        return X, names
    gone = [names[j] for j in dropped]
    warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(gone)} "
                  f"column(s): {', '.join(gone)}", RankDeficiencyWarning, stacklevel=3)
    keep = [j for j in range(X.shape[1]) if j not in set(dropped)]
    return np.ascontiguousarray(X[:, keep]), tuple(names[j] for j in keep)
