"""Elimination of the first random term with its blocks streamed from a :class:`LevelStore`.

The same arithmetic as :class:`~mixedfx.linalg.tiles.TiledElimination` (per-level Cholesky
factors, then the row-panel Schur update of the dense remainder), applied one chunk of levels
at a time: the factor G_j = A21_j T1 L_j^{-T} of a chunk lives only while its update is
applied. Memory is the remainder plus one chunk, whatever the number of levels; the price
is reading the store once per factorization (from the page cache after the first).
"""

from __future__ import annotations

import numpy as np

from .levelstore import LevelStore, level_ranges
from .tiles import (
    bounded_starts,
    bounds_from_work,
    first_term_chunk,
    level_factors,
    panel_plan,
    quadratic_forms_chunk,
    row_work,
)


class ChunkedElimination:
    """Eliminate the first term chunk by chunk (interface of ``TiledElimination``).

    Parameters
    ----------
    store : LevelStore
        A11 and A21 of the first term.
    m : int
        Size of the remainder.
    """

    def __init__(self, store: LevelStore, m: int) -> None:
        self.store, self.m = store, m
        max_entries = self.max_entries = store.chunk_entries
        ptr = store.ptr
        self.ranges = level_ranges(ptr, max_entries)
        npanel, self._update = panel_plan(ptr, m)
        rows = np.zeros(m)
        for chunk in store.chunks(max_entries):
            rows += row_work(chunk.ptr, chunk.idx, m)
        self.bounds = bounds_from_work(rows, m, npanel)
        widest = max(int(ptr[hi] - ptr[lo]) for lo, hi in self.ranges)
        self._G = np.empty((widest, store.p1))

    def apply(self, S: np.ndarray, T1: np.ndarray) -> float:
        """S <- S - sum_j G_j G_j' on the lower triangle; returns sum_j log det M_j."""
        T1 = np.ascontiguousarray(T1)
        logdet = 0.0
        for chunk in self.store.chunks(self.max_entries):
            G = self._G[: len(chunk.idx)]
            logdet += level_factors(chunk.A11, T1, chunk.val, chunk.ptr, G)
            starts = bounded_starts(chunk.ptr, chunk.idx, self.bounds)
            self._update(S, chunk.idx, G, starts)
        return logdet

    def first_term(self, z: np.ndarray, T1: np.ndarray, C: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes and covariances of the first term, chunk by chunk (see
        :meth:`TiledElimination.first_term`)."""
        l1, p1 = self.store.l1, self.store.p1
        b1, cond = np.empty((l1, p1)), np.empty((l1, p1, p1))
        # smaller chunks than the elimination's: this runs once, beside the level-sized
        # outputs, so its temporaries are what sets the fit's peak memory
        for chunk in self.store.chunks(max(self.max_entries // 4, 1)):
            Q = None if C is None else quadratic_forms_chunk(C, chunk.ptr, chunk.idx,
                                                             chunk.val, self.m)
            b1[chunk.lo : chunk.hi], cond[chunk.lo : chunk.hi] = first_term_chunk(
                chunk.A11, chunk.ptr, chunk.idx, chunk.val, z, T1, Q)
        return b1, cond
