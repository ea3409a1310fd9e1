"""Tiled elimination of the first random term (cache-blocked Schur-complement update).

Eliminating the first term subtracts sum_j G_j G_j' from the dense remainder S, where level
j touches the remainder rows idx_j and G_j = A21_j T1 L_j^{-T} (c_j x p1). Done level by
level, each update scatters over all of S, which misses the cache once S outgrows it
(a 2,000-square remainder is 32 MB). Here S is cut into square tiles of ``TILE`` rows; all
levels' contributions to one tile are applied together, so the tile stays in cache, and
tiles are independent, so they run in parallel. Because idx_j is sorted, level j's rows in
one tile are a contiguous run, found from a table built once per fit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

TILE = 512  # 2 MB of doubles: measured best of 256/512/1024 on InstEval and the 1M model
PARALLEL_WORK = 1 << 20  # below this many updates, threads cost more than they save


@njit(cache=True)
def panel_starts(ptr, idx, tile, npanel):  # pragma: no cover - compiled
    """starts[j, P]: first position of level j with idx >= P * tile (npanel + 1 columns)."""
    l1 = ptr.shape[0] - 1
    starts = np.empty((l1, npanel + 1), dtype=np.int64)
    for j in range(l1):
        s = ptr[j]
        for P in range(npanel + 1):
            bound = P * tile
            while s < ptr[j + 1] and idx[s] < bound:
                s += 1
            starts[j, P] = s
        starts[j, npanel] = ptr[j + 1]
    return starts


@njit(cache=True)
def level_factors(A11, T1, val, ptr, G):  # pragma: no cover - compiled
    """Fill G (nnz x p1) with A21_j T1 L_j^{-T} per level; return sum_j log det M_j."""
    l1, p1 = A11.shape[0], A11.shape[1]
    M = np.empty((p1, p1))
    B = np.empty((p1, p1))
    logdet = 0.0
    for j in range(l1):
        for a in range(p1):
            for b in range(p1):
                acc = 0.0
                for c in range(p1):
                    for d in range(p1):
                        acc += T1[c, a] * A11[j, c, d] * T1[d, b]
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
        for s in range(ptr[j], ptr[j + 1]):
            for a in range(p1):
                acc = 0.0
                for k in range(p1):
                    acc += val[s, k] * B[k, a]
                G[s, a] = acc
    return logdet


def _tiled_update(S, idx, G, starts, pairs):  # pragma: no cover - compiled
    """S[idx_s, idx_t] -= G_s . G_t for every level, pair of its rows in the lower triangle."""
    l1 = starts.shape[0]
    p1 = G.shape[1]
    for q in prange(pairs.shape[0]):
        P, Q = pairs[q, 0], pairs[q, 1]
        for j in range(l1):
            s0, s1 = starts[j, P], starts[j, P + 1]
            if s0 == s1:
                continue
            t0, t1 = starts[j, Q], starts[j, Q + 1]
            for s in range(s0, s1):
                row = S[idx[s]]
                tend = t1 if P != Q else s + 1
                if p1 == 1:
                    g0 = G[s, 0]
                    for t in range(t0, tend):
                        row[idx[t]] -= g0 * G[t, 0]
                elif p1 == 2:
                    g0, g1 = G[s, 0], G[s, 1]
                    for t in range(t0, tend):
                        row[idx[t]] -= g0 * G[t, 0] + g1 * G[t, 1]
                else:
                    for t in range(t0, tend):
                        acc = 0.0
                        for a in range(p1):
                            acc += G[s, a] * G[t, a]
                        row[idx[t]] -= acc


tiled_update_parallel = njit(parallel=True, cache=True)(_tiled_update)
tiled_update_serial = njit(cache=True)(_tiled_update)


class TiledElimination:
    """Eliminate the first term from the remainder, tile by tile.

    Parameters
    ----------
    A11 : numpy.ndarray
        (l1, p1, p1) first-term blocks.
    ptr, idx, val : numpy.ndarray
        CSR by level of A21 (see :class:`~mixedfx.linalg.blocks.Blocks`).
    m : int
        Size of the remainder.
    """

    def __init__(self, A11, ptr, idx, val, m: int) -> None:
        self.A11, self.ptr, self.idx, self.val = A11, ptr, idx, val
        npanel = max(1, -(-m // TILE))
        self.starts = panel_starts(ptr, idx, TILE, npanel)
        self.pairs = np.array([(P, Q) for P in range(npanel) for Q in range(P + 1)],
                              dtype=np.int64).reshape(-1, 2)
        self.G = np.empty_like(val)
        counts = np.diff(ptr)
        work = float(np.sum(counts * (counts + 1) / 2.0))
        self._update = tiled_update_parallel if work > PARALLEL_WORK else tiled_update_serial

    def quadratic_forms(self, C: np.ndarray) -> np.ndarray:
        """(l1, p1, p1) array of V_j' C[idx_j, idx_j] V_j (C covers the random remainder)."""
        return tiled_quadratic_forms(np.ascontiguousarray(C), self.idx, self.val, self.starts,
                                     self.pairs, self.A11.shape[0])

    def apply(self, S: np.ndarray, T1: np.ndarray) -> float:
        """S <- S - sum_j G_j G_j' on the lower triangle; returns sum_j log det M_j."""
        logdet = level_factors(self.A11, np.ascontiguousarray(T1), self.val, self.ptr, self.G)
        self._update(S, self.idx, self.G, self.starts, self.pairs)
        return logdet


@njit(cache=True)
def tiled_quadratic_forms(C, idx, val, starts, pairs, l1):  # pragma: no cover - compiled
    """Q_j = V_j' C[idx_j, idx_j] V_j for every level j, over entries with idx < len(C).

    Visits C tile by tile (as :func:`_tiled_update`), so C stays in cache; C is symmetric
    and only pairs t <= s are read.
    """
    p1 = val.shape[1]
    mc = C.shape[0]
    out = np.zeros((l1, p1, p1))
    for q in range(pairs.shape[0]):
        P, Q = pairs[q, 0], pairs[q, 1]
        for j in range(l1):
            s0, s1 = starts[j, P], starts[j, P + 1]
            t0, t1 = starts[j, Q], starts[j, Q + 1]
            for s in range(s0, s1):
                i = idx[s]
                if i >= mc:
                    break
                tend = t1 if P != Q else s + 1
                for t in range(t0, tend):
                    k = idx[t]
                    if k >= mc:
                        break
                    c = C[i, k]
                    if s == t:
                        for a in range(p1):
                            for b in range(p1):
                                out[j, a, b] += c * val[s, a] * val[s, b]
                    else:
                        for a in range(p1):
                            for b in range(p1):
                                out[j, a, b] += c * (val[s, a] * val[t, b]
                                                    + val[t, a] * val[s, b])
    return out
