"""Elimination of the first random term (the Schur-complement update) by row panels.

Eliminating the first term subtracts sum_j G_j G_j' from the dense remainder S, where level
j touches the remainder rows idx_j and G_j = A21_j T1 L_j^{-T} (c_j x p1). S's rows are cut
into panels of equal update work (a few per thread); all levels' contributions to one panel
are applied together, so each panel's rows stay in cache, and panels own disjoint rows, so
they run in parallel without locks. Because idx_j is sorted, level j's rows in one panel are
a contiguous run, found from a table built once per fit.

History: square tiles of 512 rows (pairs of row and column panels) replaced a level-by-level
scatter; panels balanced by work, full width, halved the update again (1M-row model: 91 ->
44 ms; InstEval 5.2 -> 2.5 ms), because square tiles split each level's short runs into
shorter ones and the diagonal tiles left threads idle. The conditional covariances of the
final solve still visit square tiles (:func:`tiled_quadratic_forms`).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange
from scipy.linalg import blas

TILE = 512  # tile of the quadratic forms (final solve only)
PARALLEL_WORK = 1 << 20  # below this many updates, threads cost more than they save
PANELS_PER_THREAD = 4  # row panels per thread: measured best of 2/4/8/16 (1M model, InstEval)
# A21 at least this dense (stored entries / (levels x remainder)) and small enough is
# scattered into a dense matrix and the update done by BLAS's dsyrk: on VerbAgg's crossed
# (1 | id) + (1 | item) (316 x 25, every pair present) 120 -> 25 us per factorization
DENSE_FILL = 0.25
DENSE_MAX_ENTRIES = 4_000_000


@njit(cache=True)
def scatter_dense(G, ptr, idx, Gd):  # pragma: no cover - compiled
    """Gd[j * p1 + a, idx[s]] = G[s, a] for every level j and its entries s (the other
    entries of Gd stay zero: the pattern is fixed)."""
    p1 = G.shape[1]
    for j in range(ptr.shape[0] - 1):
        for s in range(ptr[j], ptr[j + 1]):
            for a in range(p1):
                Gd[j * p1 + a, idx[s]] = G[s, a]


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
        # the Cholesky of M inline (as linalg.kernels.small_cholesky): calling that helper
        # here measured ~10% slower on InstEval, the hottest loop of the LMM engine
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


@njit(cache=True)
def bounded_starts(ptr, idx, bounds):  # pragma: no cover - compiled
    """starts[j, P]: first position of level j with idx >= bounds[P] (bounds ascending)."""
    l1, nb = ptr.shape[0] - 1, bounds.shape[0]
    starts = np.empty((l1, nb), dtype=np.int64)
    for j in range(l1):
        s = ptr[j]
        for P in range(nb):
            while s < ptr[j + 1] and idx[s] < bounds[P]:
                s += 1
            starts[j, P] = s
    return starts


def _panel_update(S, idx, G, starts):  # pragma: no cover - compiled
    """S[idx_s, idx_t] -= G_s . G_t for every level and pair t <= s, one row panel per task.

    Row panels own disjoint rows of S, so they run in parallel without conflicts.
    """
    l1, npanel = starts.shape[0], starts.shape[1] - 1
    for P in prange(npanel):
        p1 = G.shape[1]
        for j in range(l1):
            s0, s1 = starts[j, P], starts[j, P + 1]
            if s0 == s1:
                continue
            t0 = starts[j, 0]
            for s in range(s0, s1):
                row = S[idx[s]]
                if p1 == 1:
                    g0 = G[s, 0]
                    for t in range(t0, s + 1):
                        row[idx[t]] -= g0 * G[t, 0]
                elif p1 == 2:
                    g0, g1 = G[s, 0], G[s, 1]
                    for t in range(t0, s + 1):
                        row[idx[t]] -= g0 * G[t, 0] + g1 * G[t, 1]
                else:
                    for t in range(t0, s + 1):
                        acc = 0.0
                        for a in range(p1):
                            acc += G[s, a] * G[t, a]
                        row[idx[t]] -= acc


panel_update_parallel = njit(parallel=True, cache=True)(_panel_update)
panel_update_serial = njit(cache=True)(_panel_update)


def row_work(ptr: np.ndarray, idx: np.ndarray, m: int) -> np.ndarray:
    """Update work per remainder row: row r of level j costs its rank within the level
    (the number of entries t <= s it updates). Additive over chunks of levels."""
    level = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    rank = np.arange(len(idx)) - ptr[level] + 1
    return np.bincount(idx, weights=rank, minlength=m)


def bounds_from_work(work: np.ndarray, m: int, npanel: int) -> np.ndarray:
    """Row bounds of ``npanel`` panels with equal total ``work``."""
    cum = np.cumsum(work)
    inner = np.searchsorted(cum, cum[-1] * np.arange(1, npanel) / npanel) + 1
    return np.concatenate([[0], np.minimum(inner, m), [m + 1]]).astype(np.int64)


def panel_plan(ptr: np.ndarray, m: int) -> tuple[int, object]:
    """Number of row panels and the update kernel for levels with pointer ``ptr``: in
    parallel, a few panels per thread, once the update work is worth the threads."""
    counts = np.diff(ptr).astype(float)
    work = float(np.sum(counts * (counts + 1) / 2.0))
    if work > PARALLEL_WORK:
        return min(PANELS_PER_THREAD * get_num_threads(), max(m, 1)), panel_update_parallel
    return 1, panel_update_serial


def balanced_bounds(ptr: np.ndarray, idx: np.ndarray, m: int, npanel: int) -> np.ndarray:
    """Row bounds of ``npanel`` panels with equal update work."""
    return bounds_from_work(row_work(ptr, idx, m), m, npanel)


def first_term_chunk(A11: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
                     z: np.ndarray, T1: np.ndarray, Q: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Conditional modes b1 and covariances (over sigma^2) of some levels of the first term.

    ``z`` is the solved remainder [b_rest, beta, -1]; ``Q`` the levels' quadratic forms
    V_j' C V_j of the remainder's conditional covariance (None without other terms).
    """
    l1, p1 = A11.shape[0], A11.shape[1]
    level = np.repeat(np.arange(l1), np.diff(ptr))
    contrib = val * z[idx][:, None]
    sums = np.stack([np.bincount(level, contrib[:, a], minlength=l1) for a in range(p1)],
                    axis=1)
    M = np.einsum("ca,jcd,db->jab", T1, A11, T1)
    M += np.eye(p1)
    Minv = np.linalg.inv(M)
    u1 = np.einsum("jab,jb->ja", Minv, -(sums @ T1))
    if Q is None:
        var_u1 = Minv
    else:
        MT = Minv @ T1.T
        var_u1 = Minv + MT @ Q @ np.transpose(MT, (0, 2, 1))
    return u1 @ T1.T, T1 @ var_u1 @ T1.T


def quadratic_forms_chunk(C: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
                          m: int) -> np.ndarray:
    """(levels, p1, p1) V_j' C[idx_j, idx_j] V_j for a chunk of levels (see
    :meth:`TiledElimination.quadratic_forms`)."""
    npanel = max(1, -(-m // TILE))
    pairs = np.array([(P, Q) for P in range(npanel) for Q in range(P + 1)],
                     dtype=np.int64).reshape(-1, 2)
    starts = panel_starts(ptr, idx, TILE, npanel)
    return tiled_quadratic_forms(np.ascontiguousarray(C), idx, val, starts, pairs,
                                 len(ptr) - 1)


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
        self.A11, self.ptr, self.idx, self.val, self.m = A11, ptr, idx, val, m
        self.G = np.empty_like(val)
        npanel, self._update = panel_plan(ptr, m)
        self.row_starts = bounded_starts(ptr, idx, balanced_bounds(ptr, idx, m, npanel))
        l1, p1 = A11.shape[0], A11.shape[1]
        dense = (len(idx) >= DENSE_FILL * l1 * m and l1 * p1 * m <= DENSE_MAX_ENTRIES
                 and m > 0)
        self._dense = np.zeros((l1 * p1, m)) if dense else None
        self._tiles: tuple[np.ndarray, np.ndarray] | None = None

    def quadratic_forms(self, C: np.ndarray) -> np.ndarray:
        """(l1, p1, p1) array of V_j' C[idx_j, idx_j] V_j (C covers the random remainder)."""
        if self._tiles is None:  # built on first use: only the final solve needs it
            npanel = max(1, -(-self.m // TILE))
            pairs = np.array([(P, Q) for P in range(npanel) for Q in range(P + 1)],
                             dtype=np.int64).reshape(-1, 2)
            self._tiles = (panel_starts(self.ptr, self.idx, TILE, npanel), pairs)
        starts, pairs = self._tiles
        return tiled_quadratic_forms(np.ascontiguousarray(C), self.idx, self.val, starts,
                                     pairs, self.A11.shape[0])

    def first_term(self, z: np.ndarray, T1: np.ndarray, C: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes and covariances (over sigma^2) of the first term's levels, from
        the solved remainder ``z`` and its conditional covariance ``C`` (scaled by Lambda;
        None without other terms); see :func:`first_term_chunk`."""
        Q = None if C is None else self.quadratic_forms(C)
        return first_term_chunk(self.A11, self.ptr, self.idx, self.val, z, T1, Q)

    def apply(self, S: np.ndarray, T1: np.ndarray) -> float:
        """S <- S - sum_j G_j G_j' on the lower triangle; returns sum_j log det M_j."""
        logdet = level_factors(self.A11, np.ascontiguousarray(T1), self.val, self.ptr, self.G)
        if self._dense is not None and S.flags.c_contiguous:
            Gd = self._dense
            scatter_dense(self.G, self.ptr, self.idx, Gd)
            # S's lower triangle is the upper triangle of the Fortran-ordered S.T, and
            # Gd.T (Fortran-ordered, m x levels) times its transpose is Gd'Gd
            blas.dsyrk(-1.0, Gd.T, beta=1.0, c=S.T, trans=0, lower=0, overwrite_c=1)
        else:
            self._update(S, self.idx, self.G, self.row_starts)
        return logdet


@njit(parallel=True, cache=True)
def tiled_quadratic_forms(C, idx, val, starts, pairs, l1):  # pragma: no cover - compiled
    """Q_j = V_j' C[idx_j, idx_j] V_j for every level j, over entries with idx < len(C).

    Visits C tile by tile, so C stays in cache, levels in parallel within a tile; C is
    symmetric and only pairs t <= s are read.
    """
    p1 = val.shape[1]
    mc = C.shape[0]
    out = np.zeros((l1, p1, p1))
    for q in range(pairs.shape[0]):
        P, Q = pairs[q, 0], pairs[q, 1]
        for j in prange(l1):  # levels write their own out[j]: no conflicts
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
