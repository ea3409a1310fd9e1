"""Numba kernels of the PLS factorization (hot loops only)."""

from __future__ import annotations

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
