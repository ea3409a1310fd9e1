"""Numba kernels of the PLS factorization (hot loops only)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def eliminate_first_term(S, A11, ptr, idx, val, T1):  # pragma: no cover - compiled
    """Subtract the first term's contribution from the remainder, in place.

    For each level j of the first term, with M_j = T1' A11_j T1 + I = L_j L_j', this does
    S[idx_j, idx_j] -= G_j G_j' with G_j = A21_j T1 L_j^{-T}, on the lower triangle of S
    (row index >= column index). Returns sum_j log det M_j.
    """
    l1, p1 = A11.shape[0], A11.shape[1]
    M = np.empty((p1, p1))
    B = np.empty((p1, p1))
    cmax = 0
    for j in range(l1):
        cmax = max(cmax, ptr[j + 1] - ptr[j])
    G = np.empty((cmax, p1))
    logdet = 0.0
    for j in range(l1):
        for a in range(p1):
            for b in range(p1):
                acc = 0.0
                for c in range(p1):
                    tc = T1[c, a]
                    if tc != 0.0:
                        for d in range(p1):
                            acc += tc * A11[j, c, d] * T1[d, b]
                M[a, b] = acc
            M[a, a] += 1.0
        for a in range(p1):
            acc = M[a, a]
            for k in range(a):
                acc -= M[a, k] * M[a, k]
            dg = np.sqrt(acc)
            M[a, a] = dg
            logdet += 2.0 * np.log(dg)
            for b in range(a + 1, p1):
                acc = M[b, a]
                for k in range(a):
                    acc -= M[b, k] * M[a, k]
                M[b, a] = acc / dg
        for r in range(p1):
            for a in range(p1):
                acc = T1[r, a]
                for k in range(a):
                    acc -= M[a, k] * B[r, k]
                B[r, a] = acc / M[a, a]
        start = ptr[j]
        c = ptr[j + 1] - start
        for s in range(c):
            for a in range(p1):
                acc = 0.0
                for k in range(p1):
                    acc += val[start + s, k] * B[k, a]
                G[s, a] = acc
        for s in range(c):
            ia = idx[start + s]
            for t in range(s + 1):
                ib = idx[start + t]
                acc = 0.0
                for a in range(p1):
                    acc += G[s, a] * G[t, a]
                S[ia, ib] -= acc
    return logdet


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
