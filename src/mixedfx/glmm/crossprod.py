"""The LMM engine's cross-product blocks, refilled in place for new weights and response.

A PIRLS step is a weighted penalized least-squares solve with IRLS weights w and working
response z: the engine's input [Z X z]'W[Z X z] changes values but not sparsity. The
structure (which remainder columns each level of the first term touches, the engine's
elimination tables) is built once by :func:`mixedfx.linalg.blocks.build_blocks`; each
:meth:`WeightedCrossprod.update` recomputes the values with weighted ``bincount`` sums into the
same arrays, so the :class:`~mixedfx.linalg.pls.PlsFactorizer` built on them stays valid.
"""

from __future__ import annotations

import numpy as np

from ..design import ReTerm
from ..linalg.blocks import Blocks, build_blocks
from .kernels import refill_by_level


class WeightedCrossprod:
    """Cross-product blocks of [Z X z] in engine order, refillable for new (w, z).

    Parameters
    ----------
    terms : list of ReTerm
        Engine order.
    X : numpy.ndarray
        (n, p) fixed-effects columns inside the solve (p = 0 when beta is held fixed).
    """

    def __init__(self, terms: list[ReTerm], X: np.ndarray) -> None:
        n = X.shape[0]
        self.terms, self.X, self.n = terms, X, n
        self.blocks: Blocks = build_blocks(terms, X, np.zeros(n), np.ones(n))
        b = self.blocks
        first = terms[0]
        self.c1, self.Z1, self.l1 = first.codes, first.Z, first.nlevels
        p1 = first.dim
        rest, offsets, off = [], [], 0
        for t in terms[1:]:
            offsets.append(off)
            for j in range(t.dim):
                rest.append((off + t.codes * t.dim + j, t.Z[:, j]))
            off += t.nlevels * t.dim
        self.m_r = m_r = off
        self.rest = rest
        pxy = X.shape[1] + 1
        # A21: positions in A21_val of the (level, rest column) pairs, as build_blocks lays
        # them out (sorted keys, then the dense X, z columns of each level)
        ptr = b.A21_ptr
        if rest:
            keys = np.concatenate([self.c1 * m_r + col for col, _ in rest])
            uniq, self.a21_inv = np.unique(keys, return_inverse=True)
            rlev = uniq // m_r
            self.a21_prod = [np.concatenate([self.Z1[:, a] * z for _, z in rest])
                             for a in range(p1)]
            self.a21_rows = np.tile(np.arange(n), len(rest))
        else:
            uniq = rlev = np.zeros(0, dtype=np.int64)
        self.n_uniq = len(uniq)
        rcount = np.bincount(rlev, minlength=self.l1)
        rstart = np.concatenate([[0], np.cumsum(rcount)])
        self.a21_pos = ptr[rlev] + np.arange(len(rlev)) - rstart[rlev]
        self.dense_pos = (ptr[:-1] + rcount)[:, None] + np.arange(pxy)[None, :]
        # per-row layout for the one-pass kernel, rows sorted by the first term's level (then
        # the first rest column) so that its writes into A21 run through memory in order:
        # on a 200,000-row crossed model with rows in random order this sorting made the
        # refill several times faster (cache misses)
        nr = len(rest)
        rest_col = np.array([c for c, _ in rest], dtype=np.int64).reshape(nr, n)
        order = np.lexsort((rest_col[0], self.c1)) if nr else np.argsort(self.c1, kind="stable")
        self.order = order
        self.rest_col = np.ascontiguousarray(rest_col[:, order])
        self.rest_z = np.ascontiguousarray(
            np.array([z for _, z in rest], dtype=float).reshape(nr, n)[:, order])
        self.rest_pos = (np.ascontiguousarray(self.a21_pos[self.a21_inv].reshape(nr, n)[:, order])
                         if rest else np.zeros((0, n), dtype=np.int64))
        self.dense_pos = np.ascontiguousarray(self.dense_pos)
        self.Z1c = np.ascontiguousarray(self.Z1[order].T, dtype=float)  # (p1, n)
        self.c1c = np.ascontiguousarray(self.c1[order], dtype=np.int64)
        self._XY = np.empty((X.shape[1] + 1, n))  # column-major [X z]
        self._XY[:-1] = X[order].T
        self.level_start = np.searchsorted(self.c1c, np.arange(self.l1 + 1)).astype(np.int64)

    def update(self, w: np.ndarray, z: np.ndarray) -> Blocks:
        """Refill the blocks in place with weights ``w`` and response ``z``."""
        b = self.blocks
        np.take(z, self.order, out=self._XY[-1])
        refill_by_level(np.take(w, self.order), self.Z1c, self.level_start, self.rest_col,
                        self.rest_z, self.rest_pos, self.dense_pos, self._XY, b.A11,
                        b.A21_val, b.A22, self.m_r)
        return b
