"""Cross-product blocks [Z X y]'W[Z X y]: the only input of the LMM engine.

The random-effects terms are taken in *engine order* (largest number of random effects
first). The first term's block ``A11`` is block diagonal (one ``p1 x p1`` block per level)
and is eliminated analytically; everything else (the other terms, then X, then y) forms a
dense *remainder* of size ``m``. ``A21`` (remainder x first term) keeps its sparsity: for
each level of the first term, the remainder columns it touches and the values there.

An out-of-core backend only has to produce a :class:`Blocks` by aggregation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .levelstore import CHUNK_ENTRIES, LevelChunk, LevelStore, LevelStoreWriter, memory_chunks


@dataclass(frozen=True, eq=False)
class Blocks:
    """Cross-products of the weighted design, in engine order.

    Attributes
    ----------
    n : int
        Number of observations.
    dims, nlevels : tuple of int
        Random effects per level, and levels, of each term in engine order.
    p : int
        Number of fixed-effects columns.
    A11 : numpy.ndarray
        (l1, p1, p1) per-level blocks of Z1'WZ1.
    A21_ptr, A21_idx, A21_val : numpy.ndarray
        CSR by level of the first term: for level j, remainder indices
        ``A21_idx[A21_ptr[j]:A21_ptr[j+1]]`` (sorted) and the (c, p1) values of
        [Z_rest X y]'W Z1 there.
    A22 : numpy.ndarray
        (m, m) dense, symmetric: [Z_rest X y]'W[Z_rest X y].
    offsets : tuple of int
        Start of each remaining term (engine order, from the second) in the remainder.
    sum_log_weights : float
        sum(log w) of the prior weights, which enters the deviance.
    store : LevelStore, optional
        When set, A11 and A21 live in files (an out-of-core fit with millions of levels):
        ``A11``, ``A21_idx`` and ``A21_val`` are then empty and ``A21_ptr`` is the store's.
        Read them through :meth:`level_chunks`.
    """

    n: int
    dims: tuple[int, ...]
    nlevels: tuple[int, ...]
    p: int
    A11: np.ndarray
    A21_ptr: np.ndarray
    A21_idx: np.ndarray
    A21_val: np.ndarray
    A22: np.ndarray
    offsets: tuple[int, ...]
    sum_log_weights: float
    store: LevelStore | None = None

    def level_chunks(self, max_entries: int = CHUNK_ENTRIES) -> Iterator[LevelChunk]:
        """The first term's A11 and A21 in chunks of levels, from memory or the store (in
        the store's own chunks)."""
        if self.store is not None:
            return self.store.chunks()
        return memory_chunks(self.A11, self.A21_ptr, self.A21_idx, self.A21_val, max_entries)

    def on_disk(self, directory: str | None = None, chunk_entries: int | None = None
                ) -> Blocks:
        """The same blocks with the first term moved to a :class:`LevelStore`."""
        if self.store is not None:
            return self
        store = LevelStoreWriter.from_blocks(self.A11, self.A21_ptr, self.A21_idx,
                                             self.A21_val, self.m, directory, chunk_entries)
        return replace(self, **stored_first_term(store))

    def first_A11(self) -> np.ndarray:
        """All (l1, p1, p1) A11 blocks (read from the store when there is one)."""
        return self.A11 if self.store is None else self.store.read_A11()

    @property
    def m(self) -> int:
        """Size of the dense remainder: random effects of terms 2.. plus p plus 1 (y)."""
        return self.A22.shape[0]

    @property
    def m_random(self) -> int:
        """Random effects in the remainder (terms 2..)."""
        return self.m - self.p - 1


def stored_first_term(store: LevelStore) -> dict:
    """The first term's fields of :class:`Blocks` when its blocks live in ``store``."""
    p1 = store.p1
    return dict(A11=np.zeros((0, p1, p1)), A21_ptr=store.ptr,
                A21_idx=np.zeros(0, dtype=store.idx_dtype), A21_val=np.zeros((0, p1)),
                store=store)


def _rest_columns(codes: list[np.ndarray], Zs: list[np.ndarray], offsets: list[int]):
    """Yield (global remainder column of each row, weighted value) per rest term component."""
    for c, Z, off in zip(codes, Zs, offsets, strict=False):
        p = Z.shape[1]
        for b in range(p):
            yield off + c * p + b, Z[:, b]


def _first_term_blocks(c1: np.ndarray, Z1: np.ndarray, l1: int) -> np.ndarray:
    p1 = Z1.shape[1]
    A11 = np.empty((l1, p1, p1))
    for a in range(p1):
        for b in range(a + 1):
            A11[:, a, b] = A11[:, b, a] = np.bincount(c1, Z1[:, a] * Z1[:, b], minlength=l1)
    return A11


def _a21(c1, Z1, l1, rest, XY, m_r):
    """CSR by level of the first term of the remainder x first-term cross-products."""
    p1, pxy = Z1.shape[1], XY.shape[1]
    if rest:
        keys = np.concatenate([c1 * m_r + col for col, _ in rest])
        uniq, inv = np.unique(keys, return_inverse=True)
        rvals = np.empty((len(uniq), p1))
        for a in range(p1):
            w = np.concatenate([Z1[:, a] * z for _, z in rest])
            rvals[:, a] = np.bincount(inv, w, minlength=len(uniq))
        rlev, rcol = uniq // m_r, uniq % m_r
    else:
        rlev = rcol = np.zeros(0, dtype=np.int64)
        rvals = np.zeros((0, p1))
    rcount = np.bincount(rlev, minlength=l1)
    ptr = np.zeros(l1 + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(rcount + pxy)
    rstart = np.zeros(l1 + 1, dtype=np.int64)
    rstart[1:] = np.cumsum(rcount)
    nnz = ptr[-1]
    idx = np.empty(nnz, dtype=np.int64)
    val = np.empty((nnz, p1))
    pos = ptr[rlev] + np.arange(len(rlev)) - rstart[rlev]
    idx[pos], val[pos] = rcol, rvals
    dense_pos = (ptr[:-1] + rcount)[:, None] + np.arange(pxy)[None, :]
    idx[dense_pos] = m_r + np.arange(pxy)[None, :]
    for a in range(p1):
        for t in range(pxy):
            val[dense_pos[:, t], a] = np.bincount(c1, Z1[:, a] * XY[:, t], minlength=l1)
    return ptr, idx, val


def _a22(rest, XY, m_r):
    pxy = XY.shape[1]
    m = m_r + pxy
    A22 = np.zeros((m, m))
    if rest:
        rows = np.concatenate([ci for ci, _ in rest for _ in rest])
        cols = np.concatenate([cj for _ in rest for cj, _ in rest])
        vals = np.concatenate([zi * zj for _, zi in rest for _, zj in rest])
        A22[:m_r, :m_r] = sp.coo_matrix((vals, (rows, cols)), shape=(m_r, m_r)).toarray()
        for col, z in rest:
            for t in range(pxy):
                A22[m_r + t, :m_r] += np.bincount(col, z * XY[:, t], minlength=m_r)
        A22[:m_r, m_r:] = A22[m_r:, :m_r].T
    A22[m_r:, m_r:] = XY.T @ XY
    return A22


def build_blocks(terms: list, X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Blocks:
    """Compute the cross-product blocks of the weighted design.

    Parameters
    ----------
    terms : list of ReTerm
        Random-effects terms in engine order (largest number of random effects first).
    X : numpy.ndarray
        (n, p) fixed-effects matrix.
    y : numpy.ndarray
        (n,) response (offset already subtracted).
    weights : numpy.ndarray
        (n,) prior weights.

    Returns
    -------
    Blocks
    """
    sw = np.sqrt(weights)
    Zs = [t.Z * sw[:, None] for t in terms]
    XY = np.column_stack([X * sw[:, None], y * sw])
    codes = [t.codes for t in terms]
    offsets, off = [], 0
    for t in terms[1:]:
        offsets.append(off)
        off += t.nlevels * t.dim
    m_r = off
    rest = list(_rest_columns(codes[1:], Zs[1:], offsets))
    l1 = terms[0].nlevels
    ptr, idx, val = _a21(codes[0], Zs[0], l1, rest, XY, m_r)
    with np.errstate(divide="ignore"):
        slw = float(np.sum(np.log(weights[weights > 0])))
    return Blocks(n=len(y), dims=tuple(t.dim for t in terms),
                  nlevels=tuple(t.nlevels for t in terms), p=X.shape[1],
                  A11=_first_term_blocks(codes[0], Zs[0], l1), A21_ptr=ptr, A21_idx=idx,
                  A21_val=val, A22=_a22(rest, XY, m_r), offsets=tuple(offsets),
                  sum_log_weights=slw)
