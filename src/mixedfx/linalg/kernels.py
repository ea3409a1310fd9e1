"""Numba kernels of the PLS factorization (hot loops only)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def scale_lower(S, d, m_random):  # pragma: no cover - compiled
    """S <- D S D on the lower triangle, then add 1 to the first m_random diagonal entries."""
    m = S.shape[0]
    for i in range(m):
        di = d[i]
        for j in range(i + 1):
            S[i, j] *= di * d[j]
    for i in range(m_random):
        S[i, i] += 1.0


@njit(cache=True)
def deviance_from_factor(L, logdet_first, m_random, p, n, reml, sum_log_weights
                         ):  # pragma: no cover - compiled
    """Profiled ML deviance or REML criterion from the remainder's factor (see pls.py)."""
    logdet = logdet_first
    for i in range(m_random):
        logdet += 2.0 * np.log(L[i, i])
    dof = n
    if reml:
        dof = n - p
        for i in range(m_random, m_random + p):
            logdet += 2.0 * np.log(L[i, i])
    last = L.shape[0] - 1
    pwrss = L[last, last] * L[last, last]
    if not np.isfinite(logdet) or not pwrss > 0.0:
        return np.inf
    return logdet + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof)) - sum_log_weights


@njit(cache=True)
def small_cholesky(M, p):  # pragma: no cover - compiled
    """Lower Cholesky factor of the leading p x p block of M in place; returns its log
    determinant (log det of M's block). The upper triangle is left as it was."""
    logdet = 0.0
    for a in range(p):
        acc = M[a, a]
        for k in range(a):
            acc -= M[a, k] * M[a, k]
        dg = np.sqrt(acc)
        M[a, a] = dg
        logdet += 2.0 * np.log(dg)
        for b in range(a + 1, p):
            acc = M[b, a]
            for k in range(a):
                acc -= M[b, k] * M[a, k]
            M[b, a] = acc / dg
    return logdet
