"""Penalized least squares for an LMM: the blocked Cholesky factor at a given theta.

With spherical random effects u and relative covariance factor Lambda(theta), the system

    Omega = [Lambda'Z'WZ Lambda + I   Lambda'Z'WX   Lambda'Z'Wy]
            [       .                 X'WX          X'Wy       ]
            [       .                  .            y'Wy       ]

is factored as R'R. The first random term (block diagonal) is eliminated level by level;
the remainder (other terms, X, y) is a dense Schur complement factored in place by LAPACK's
``dpotrf``. Its last diagonal entry is r_yy, the square root of the penalized weighted
residual sum of squares (Bates et al. 2015, JSS 67(1), section 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..design.reterm import lower_indices
from .blocks import Blocks
from .chunked import ChunkedElimination
from .kernels import deviance_from_factor, scale_lower
from .tiles import TiledElimination


@dataclass(frozen=True, eq=False)
class Factor:
    """Blocked Cholesky factor at one theta.

    Attributes
    ----------
    L : numpy.ndarray
        (m, m) lower Cholesky factor of the remainder's Schur complement (the upper
        triangle holds stale values).
    logdet_first : float
        log det of the first term's diagonal blocks M_j = T1'A11_j T1 + I.
    ok : bool
        False when the remainder was not numerically positive definite.
    factors : tuple of numpy.ndarray
        Relative covariance factor T_k of each term (engine order).
    """

    L: np.ndarray
    logdet_first: float
    ok: bool
    factors: tuple[np.ndarray, ...]


class PlsFactorizer:
    """Factor the PLS system of fixed :class:`Blocks` for any theta (engine order).

    Parameters
    ----------
    blocks : Blocks
    """

    def __init__(self, blocks: Blocks) -> None:
        self.blocks = blocks
        self.ntheta = [d * (d + 1) // 2 for d in blocks.dims]
        self._lower = [lower_indices(d) for d in blocks.dims]
        if blocks.store is not None:  # first term on disk: stream it chunk by chunk
            self.elimination = ChunkedElimination(blocks.store, blocks.m)
        else:
            self.elimination = TiledElimination(blocks.A11, blocks.A21_ptr, blocks.A21_idx,
                                                blocks.A21_val, blocks.m)
        rest_dims = blocks.dims[1:]
        self._scalar_rest = all(d == 1 for d in rest_dims)
        col_term = np.full(blocks.m, -1, dtype=np.int64)
        for k, off in enumerate(blocks.offsets):
            size = blocks.nlevels[k + 1] * blocks.dims[k + 1]
            col_term[off : off + size] = k + 1
        self._rest_cols = np.flatnonzero(col_term >= 0)
        self._rest_term = col_term[self._rest_cols]
        self._scale = np.ones(blocks.m)

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Relative covariance factors T_k from the engine-order theta vector."""
        out, start = [], 0
        for d, nt, (rows, cols) in zip(self.blocks.dims, self.ntheta, self._lower, strict=True):
            T = np.zeros((d, d))
            T[rows, cols] = theta[start : start + nt]
            out.append(T)
            start += nt
        return tuple(out)

    def _scale_remainder(self, S: np.ndarray, factors: tuple[np.ndarray, ...]) -> None:
        b = self.blocks
        if b.m_random == 0:  # one term: the remainder is [X y] alone, nothing to scale
            return
        if self._scalar_rest:
            d = self._scale
            d[self._rest_cols] = np.array([f[0, 0] for f in factors])[self._rest_term]
            scale_lower(S, d, b.m_random)
            return
        S[:] = np.tril(S) + np.tril(S, -1).T
        for k, off in enumerate(b.offsets):
            T, lk, pk = factors[k + 1], b.nlevels[k + 1], b.dims[k + 1]
            R = slice(off, off + lk * pk)
            S[:, R] = (S[:, R].reshape(b.m, lk, pk) @ T).reshape(b.m, lk * pk)
            S[R, :] = np.einsum("ba,lbm->lam", T, S[R, :].reshape(lk, pk, b.m)).reshape(
                lk * pk, b.m)
        S[np.arange(b.m_random), np.arange(b.m_random)] += 1.0

    def factor(self, theta: np.ndarray, out: np.ndarray | None = None) -> Factor:
        """Factor the system at ``theta``.

        Parameters
        ----------
        theta : numpy.ndarray
            Engine-order covariance parameters.
        out : numpy.ndarray, optional
            Work array of shape (m, m) to factor in place (a new one when omitted).
        """
        b = self.blocks
        factors = self.split(np.asarray(theta, dtype=float))
        S = np.empty_like(b.A22) if out is None else out
        np.copyto(S, b.A22)
        logdet1 = self.elimination.apply(S, factors[0])
        self._scale_remainder(S, factors)
        # S is C-ordered with its lower triangle filled: S.T is Fortran-ordered and its upper
        # triangle is the same matrix, so dpotrf(upper) factors it in place as U'U, U = L'.
        _, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        return Factor(L=S, logdet_first=float(logdet1), ok=info == 0, factors=factors)


def profiled_deviance(f: Factor, blocks: Blocks, reml: bool) -> float:
    """Profiled deviance (ML) or REML criterion from a factor.

    Notes
    -----
    With r = r_yy^2 the penalized weighted RSS and log|L|^2 the log determinant of the
    random-effects part,

    ML:   log|L|^2 + n (1 + log(2 pi r / n)) - sum(log w)
    REML: log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r / (n - p))) - sum(log w)
    """
    if not f.ok:
        return np.inf
    return float(deviance_from_factor(f.L, f.logdet_first, blocks.m_random, blocks.p, blocks.n,
                                      reml, blocks.sum_log_weights))
