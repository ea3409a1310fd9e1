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
def level_quadratic_forms(ptr, idx, val, p1, C):  # pragma: no cover - compiled
    """For each level j: Q_j = V_j' C[idx_j, idx_j] V_j with V_j = val[ptr_j:ptr_j+1] (c x p1).

    Only entries with idx < C.shape[0] take part. Returns (l1, p1, p1).
    """
    l1 = ptr.shape[0] - 1
    mc = C.shape[0]
    out = np.zeros((l1, p1, p1))
    for j in range(l1):
        for s in range(ptr[j], ptr[j + 1]):
            i = idx[s]
            if i >= mc:
                continue
            for t in range(ptr[j], ptr[j + 1]):
                k = idx[t]
                if k >= mc:
                    continue
                cik = C[i, k]
                for a in range(p1):
                    va = val[s, a] * cik
                    for b in range(p1):
                        out[j, a, b] += va * val[t, b]
    return out
