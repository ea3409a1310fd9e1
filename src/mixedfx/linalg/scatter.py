"""Precomputed scatter of the first term's Schur-complement update.

Eliminating the first random term subtracts sum_j V_j W_j V_j' from the remainder, where
V_j (c_j x p1) are level j's cross-products and W_j = T1 M_j^{-1} T1' (p1 x p1) is the only
part that depends on theta. The update is therefore *linear* in the entries of all W_j:

    vec(update) = K w,   w = (W_j[a, b] for each level j and a <= b).

K is built once per fit as a matrix whose rows are the distinct destinations in the lower
triangle of the remainder (sorted, so each evaluation streams through memory instead of
scattering at random) and whose columns are (level, a <= b). One evaluation is then a
sparse matrix-vector product: InstEval's 2.1 million updates take a few milliseconds.
When K would be too large (``MAX_BYTES``), the per-level kernel is used instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MAX_BYTES = 1 << 30
PARALLEL_NNZ = 1 << 20


@njit(cache=True)
def scatter_size(ptr, p1):  # pragma: no cover - compiled
    """Number of stored entries of K."""
    total = 0
    for j in range(ptr.shape[0] - 1):
        c = ptr[j + 1] - ptr[j]
        total += c * (c + 1) // 2
    return total * (p1 * (p1 + 1) // 2)


@njit(cache=True)
def build_scatter(ptr, idx, val, m):  # pragma: no cover - compiled
    """Build K in CSR form by destination (counting sort over the m x m lower triangle).

    Returns (dest, rowptr, cols, vals): dest[r] is the flat index i*m + k (i >= k) of row r.
    """
    l1, p1 = ptr.shape[0] - 1, val.shape[1]
    npair = p1 * (p1 + 1) // 2
    counts = np.zeros(m * m + 1, dtype=np.int64)
    for j in range(l1):
        for s in range(ptr[j], ptr[j + 1]):
            for t in range(ptr[j], s + 1):
                counts[idx[s] * m + idx[t] + 1] += npair
    nrows = 0
    for d in range(m * m):
        if counts[d + 1] > 0:
            nrows += 1
    dest = np.empty(nrows, dtype=np.int64)
    rowptr = np.zeros(nrows + 1, dtype=np.int64)
    slot = np.full(m * m, -1, dtype=np.int64)
    r = 0
    for d in range(m * m):
        if counts[d + 1] > 0:
            dest[r] = d
            slot[d] = r
            rowptr[r + 1] = rowptr[r] + counts[d + 1]
            r += 1
    fill = rowptr[:-1].copy()
    nnz = rowptr[nrows]
    cols = np.empty(nnz, dtype=np.int32)
    vals = np.empty(nnz)
    for j in range(l1):
        for s in range(ptr[j], ptr[j + 1]):
            for t in range(ptr[j], s + 1):
                row = slot[idx[s] * m + idx[t]]
                q = 0
                for a in range(p1):
                    for b in range(a, p1):
                        x = val[s, a] * val[t, b]
                        if a != b:
                            x += val[s, b] * val[t, a]
                        k = fill[row]
                        cols[k] = j * npair + q
                        vals[k] = x
                        fill[row] = k + 1
                        q += 1
    return dest, rowptr, cols, vals


@njit(parallel=True, cache=True)
def apply_scatter_parallel(S_flat, dest, rowptr, cols, vals, w):  # pragma: no cover
    """S_flat[dest] -= K w (destinations are distinct, so rows run in parallel)."""
    for r in prange(dest.shape[0]):
        acc = 0.0
        for k in range(rowptr[r], rowptr[r + 1]):
            acc += vals[k] * w[cols[k]]
        S_flat[dest[r]] -= acc


@njit(cache=True)
def apply_scatter_serial(S_flat, dest, rowptr, cols, vals, w):  # pragma: no cover
    """As :func:`apply_scatter_parallel`, without the thread start-up cost of small K."""
    for r in range(dest.shape[0]):
        acc = 0.0
        for k in range(rowptr[r], rowptr[r + 1]):
            acc += vals[k] * w[cols[k]]
        S_flat[dest[r]] -= acc


@njit(cache=True)
def level_weights(A11, T1):  # pragma: no cover - compiled
    """w = (W_j[a, b], a <= b) with W_j = T1 M_j^{-1} T1', M_j = T1'A11_j T1 + I; and
    sum_j log det M_j."""
    l1, p1 = A11.shape[0], A11.shape[1]
    npair = p1 * (p1 + 1) // 2
    w = np.empty(l1 * npair)
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
        for a in range(p1):  # Cholesky M = L L' in place (lower)
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
        for r in range(p1):  # B = T1 L^{-T}, so W = B B'
            for a in range(p1):
                acc = T1[r, a]
                for k in range(a):
                    acc -= M[a, k] * B[r, k]
                B[r, a] = acc / M[a, a]
        q = 0
        for a in range(p1):
            for b in range(a, p1):
                acc = 0.0
                for k in range(p1):
                    acc += B[a, k] * B[b, k]
                w[j * npair + q] = acc
                q += 1
    return w, logdet


class LevelScatter:
    """K for fixed blocks, and the theta-dependent weights w and log-determinant.

    Parameters
    ----------
    A11 : numpy.ndarray
        (l1, p1, p1) first-term blocks.
    ptr, idx, val : numpy.ndarray
        CSR by level of A21 (see :class:`~mixedfx.linalg.blocks.Blocks`).
    m : int
        Size of the remainder.
    """

    def __init__(self, A11: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
                 m: int) -> None:
        self.A11 = A11
        self.dest, self.rowptr, self.cols, self.vals = build_scatter(ptr, idx, val, m)

    @staticmethod
    def fits(ptr: np.ndarray, p1: int, m: int) -> bool:
        """Whether K fits the memory budget for these blocks."""
        return scatter_size(ptr, p1) * 12 + m * m * 16 <= MAX_BYTES

    def weights(self, T1: np.ndarray) -> tuple[np.ndarray, float]:
        """w (levels x pairs, flattened) and sum_j log det M_j at factor T1."""
        return level_weights(self.A11, np.ascontiguousarray(T1))

    def apply(self, S: np.ndarray, T1: np.ndarray) -> float:
        """Subtract the first term's update from S's lower triangle; return its log det."""
        w, logdet = self.weights(T1)
        kernel = apply_scatter_parallel if len(self.vals) > PARALLEL_NNZ else apply_scatter_serial
        kernel(S.reshape(-1), self.dest, self.rowptr, self.cols, self.vals, w)
        return logdet
