"""Cross-product blocks of the prewhitened design, in the engine's :class:`Blocks` layout.

With a whitening matrix W (W R W' = I for the residual covariance R / sigma^2), the LMM
y = X beta + Z b + e, e ~ N(0, sigma^2 R), becomes an ordinary one in W y, W X, W Z. Only
the cross-products [WZ WX Wy]'[WZ WX Wy] enter the engine.

W mixes rows within a residual group. A random term whose level is constant within every
residual group keeps one level per row after whitening (its rows move, their level does
not): such a *compatible* term can be the engine's first term, whose block of Z'Z is block
diagonal and is eliminated analytically. Every other term is carried as a sparse matrix
(n x levels*dim) and whitened as one (W Z_k may touch several levels per row, e.g. an item
factor crossed with AR(1) residuals within subjects); its cross-products land in the dense
remainder, exactly where the engine already puts every term after the first.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..linalg.blocks import Blocks


def term_matrix(codes: np.ndarray, Z: np.ndarray, nlevels: int, offset: int = 0,
                width: int | None = None) -> sp.csr_matrix:
    """Sparse n x (nlevels*dim) model matrix of a random term (columns level-major)."""
    n, p = Z.shape
    cols = offset + codes[:, None] * p + np.arange(p)[None, :]
    width = nlevels * p if width is None else width
    indptr = np.arange(0, n * p + 1, p)
    return sp.csr_matrix((Z.ravel().astype(float), cols.ravel(), indptr), shape=(n, width))


class WhitenedDesign:
    """The raw design in engine order, whitened and cross-multiplied for each W.

    Parameters
    ----------
    first_codes, Z1, l1
        Level codes (n,), raw columns (n, p1) and number of levels of the first term, which
        must be compatible with the residual groups.
    Z_rest : scipy.sparse.csr_matrix
        (n, m_r) raw model matrix of the other terms (engine order, columns at ``offsets``).
    XY : numpy.ndarray
        (n, p + 1) fixed-effects matrix and response (offset removed).
    dims, nlevels, offsets
        As :class:`~mixedfx.linalg.blocks.Blocks`.
    """

    def __init__(self, first_codes: np.ndarray, Z1: np.ndarray, l1: int, Z_rest: sp.csr_matrix,
                 XY: np.ndarray, dims: tuple[int, ...], nlevels: tuple[int, ...],
                 offsets: tuple[int, ...]) -> None:
        self.codes, self.Z1, self.l1, self.Z_rest, self.XY = first_codes, Z1, l1, Z_rest, XY
        self.dims, self.nlevels, self.offsets = dims, nlevels, offsets
        n = len(first_codes)
        # level indicator (l1 x n): sums of row products per level in one sparse product
        self.indicator = sp.csr_matrix((np.ones(n), (first_codes, np.arange(n))), shape=(l1, n))
        self._rest_rows = np.repeat(np.arange(n), np.diff(Z_rest.indptr))

    def blocks(self, W: sp.csr_matrix | np.ndarray, sum_log_weights: float) -> Blocks:
        """Blocks of [W Z1, W Z_rest, W X, W y].

        Parameters
        ----------
        W : scipy.sparse.csr_matrix or numpy.ndarray
            (n, n) whitening matrix, or a vector (n,) for a diagonal one.
        sum_log_weights : float
            -log det R (enters the deviance as the prior weights' sum(log w) does).
        """
        n, p1 = self.Z1.shape
        m_r, pxy = self.Z_rest.shape[1], self.XY.shape[1]
        m, l1 = m_r + pxy, self.l1
        diagonal = isinstance(W, np.ndarray)
        Z1w = self.Z1 * W[:, None] if diagonal else W @ self.Z1
        XYw = self.XY * W[:, None] if diagonal else W @ self.XY
        rows = Z1w.shape[0]
        if rows == n:  # row i of W stays in row i's group, so in its level
            codes, indicator = self.codes, self.indicator
        else:  # a Gram basis matrix: each row stays in the group of its first entry
            codes = self.codes[W.indices[W.indptr[:-1]]]
            indicator = sp.csr_matrix((np.ones(rows), (codes, np.arange(rows))),
                                      shape=(l1, rows))
        sq = (Z1w[:, :, None] * Z1w[:, None, :]).reshape(rows, p1 * p1)
        A11 = np.asarray(indicator @ sq).reshape(l1, p1, p1)
        cross = (Z1w[:, :, None] * XYw[:, None, :]).reshape(rows, p1 * pxy)
        dense = np.asarray(indicator @ cross).reshape(l1, p1, pxy)  # (level, a, t)
        A22 = np.empty((m, m))
        if m_r:
            if diagonal:
                Zrw = self.Z_rest.copy()
                Zrw.data *= W[self._rest_rows]
            else:
                Zrw = (W @ self.Z_rest).tocsr()
            rest = (Zrw.T @ term_matrix(codes, Z1w, l1)).tocoo()
            A22[:m_r, :m_r] = (Zrw.T @ Zrw).toarray()
            A22[m_r:, :m_r] = (Zrw.T @ XYw).T
            A22[:m_r, m_r:] = A22[m_r:, :m_r].T
            ptr, idx, val = _by_level(rest, dense, l1, p1, m_r)
        else:
            ptr = np.arange(0, (l1 + 1) * pxy, pxy, dtype=np.int64)
            idx = np.tile(np.arange(pxy, dtype=np.int64), l1)
            val = np.ascontiguousarray(np.transpose(dense, (0, 2, 1)).reshape(l1 * pxy, p1))
        A22[m_r:, m_r:] = XYw.T @ XYw
        return Blocks(n=n, dims=self.dims, nlevels=self.nlevels, p=pxy - 1, A11=A11,
                      A21_ptr=ptr, A21_idx=idx, A21_val=val, A22=A22, offsets=self.offsets,
                      sum_log_weights=sum_log_weights)


def _by_level(rest: sp.coo_matrix, dense: np.ndarray, l1: int, p1: int, m_r: int):
    """CSR by level of the first term: sparse remainder columns, then the X and y columns."""
    pxy = dense.shape[2]
    level, a = rest.col // p1, rest.col % p1
    keys = level.astype(np.int64) * m_r + rest.row
    uniq, inv = np.unique(keys, return_inverse=True)
    rvals = np.zeros((len(uniq), p1))
    np.add.at(rvals, (inv, a), rest.data)
    rlev, rcol = uniq // m_r, uniq % m_r
    rcount = np.bincount(rlev, minlength=l1)
    ptr = np.zeros(l1 + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(rcount + pxy)
    rstart = np.zeros(l1 + 1, dtype=np.int64)
    rstart[1:] = np.cumsum(rcount)
    idx = np.empty(ptr[-1], dtype=np.int64)
    val = np.empty((ptr[-1], p1))
    pos = ptr[rlev] + np.arange(len(rlev)) - rstart[rlev]
    idx[pos], val[pos] = rcol, rvals
    dense_pos = (ptr[:-1] + rcount)[:, None] + np.arange(pxy)[None, :]
    idx[dense_pos] = m_r + np.arange(pxy)[None, :]
    val[dense_pos] = np.transpose(dense, (0, 2, 1))
    return ptr, idx, val


class GramBlocks:
    """Blocks as a fixed linear combination of precomputed ones: sum_k c_k G(B_k).

    For a correlation structure with C^-1 = sum_k c_k(x) B_k'B_k (see
    :meth:`~mixedfx.residual.base.BoundCorrelation.gram_basis`), the cross-products of the
    whitened design are sum_k c_k (B_k D M)'(B_k D M), D = diag(sqrt(prior weights)). Each
    term is computed once; an evaluation only combines them, at the cost of the blocks' size
    (independent of the number of observations). The A21 values of every term are laid out
    on the union of their sparsity patterns.

    Parameters
    ----------
    design : WhitenedDesign
    basis : list of scipy.sparse.csr_matrix
        The B_k (rows_k x n).
    row_scale : numpy.ndarray
        sqrt(prior weights) (n,).
    """

    def __init__(self, design: WhitenedDesign, basis: list[sp.csr_matrix],
                 row_scale: np.ndarray) -> None:
        comps = []
        for B in basis:
            B = B.tocsr(copy=True)
            B.data *= row_scale[B.indices]
            comps.append(design.blocks(B, 0.0))
        first = comps[0]
        l1, m = design.l1, first.m
        keys = [np.repeat(np.arange(l1), np.diff(c.A21_ptr)) * m + c.A21_idx for c in comps]
        union = np.unique(np.concatenate(keys))
        level, self.idx = union // m, union % m
        self.ptr = np.zeros(l1 + 1, dtype=np.int64)
        self.ptr[1:] = np.cumsum(np.bincount(level, minlength=l1))
        p1 = first.A21_val.shape[1]
        self.vals = np.zeros((len(comps), len(union), p1))
        for k, (c, key) in enumerate(zip(comps, keys, strict=True)):
            self.vals[k, np.searchsorted(union, key)] = c.A21_val
        self.A11s = np.stack([c.A11 for c in comps])
        self.A22s = np.stack([c.A22 for c in comps])
        self.template = first

    def combine(self, coef: np.ndarray, n: int, sum_log_weights: float) -> Blocks:
        """sum_k coef_k G(B_k) as :class:`Blocks` of n observations."""
        t = self.template
        return Blocks(n=n, dims=t.dims, nlevels=t.nlevels, p=t.p,
                      A11=_combine(coef, self.A11s), A21_ptr=self.ptr, A21_idx=self.idx,
                      A21_val=_combine(coef, self.vals), A22=_combine(coef, self.A22s),
                      offsets=t.offsets, sum_log_weights=sum_log_weights)


def _combine(coef: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """sum_k coef_k stack[k], by in-place scaled additions (no reshaping copies)."""
    out = np.multiply(stack[0], coef[0])
    tmp = np.empty_like(out)
    for k in range(1, len(coef)):
        np.multiply(stack[k], coef[k], out=tmp)
        out += tmp
    return out
