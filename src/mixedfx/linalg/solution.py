"""Quantities needed once, at the optimum: beta, conditional modes, conditional covariances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from .blocks import Blocks
from .pls import Factor, PlsFactorizer


@dataclass(frozen=True, eq=False)
class PlsSolution:
    """Solution of the PLS problem at one theta (engine order).

    Attributes
    ----------
    beta : numpy.ndarray
        Fixed effects (p,).
    b : tuple of numpy.ndarray
        Conditional modes per term, (l_k, p_k), on the data scale (b = Lambda u).
    cond_cov : tuple of numpy.ndarray
        Conditional covariances of b per term and level, (l_k, p_k, p_k), divided by sigma^2.
    pwrss : float
        Penalized weighted residual sum of squares r_yy^2.
    logdet_L, logdet_RX : float
        log|L|^2 of the random-effects part and log|R_X|^2.
    RX_inv_cov : numpy.ndarray
        (R_X'R_X)^{-1}: vcov(beta) is sigma^2 times this.
    """

    beta: np.ndarray
    b: tuple[np.ndarray, ...]
    cond_cov: tuple[np.ndarray, ...]
    pwrss: float
    logdet_L: float
    logdet_RX: float
    RX_inv_cov: np.ndarray


def _lambda_rest(C: np.ndarray, blocks: Blocks, factors, left: bool, right: bool) -> np.ndarray:
    """Apply Lambda_rest' from the left and/or Lambda_rest from the right to an m_r-square C."""
    out = C.copy()
    for k, off in enumerate(blocks.offsets):
        T, lk, pk = factors[k + 1], blocks.nlevels[k + 1], blocks.dims[k + 1]
        R = slice(off, off + lk * pk)
        if right:
            out[:, R] = (out[:, R].reshape(-1, lk, pk) @ T.T).reshape(-1, lk * pk)
        if left:
            out[R, :] = np.einsum("ab,lbm->lam", T, out[R, :].reshape(lk, pk, -1)).reshape(
                lk * pk, -1)
    return out


def lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverse of the lower triangle of L by LAPACK dtrtri (scipy's solve_triangular
    costs 0.1-8 ms of overhead per call on small matrices); the upper triangle of L is
    ignored."""
    inv, info = lapack.dtrtri(np.array(L, order="F"), lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular factor (dtrtri info {info})")
    return np.tril(inv)  # dtrtri leaves the (unreferenced) upper triangle as it was


def triangular_solve_transposed(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with L' x = b for lower-triangular L, by LAPACK dtrtrs on L' (upper, no transpose
    copy beyond making it contiguous)."""
    x, info = lapack.dtrtrs(np.asfortranarray(L.T), b, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular factor (dtrtrs info {info})")
    return x


def solve(fz: PlsFactorizer, theta: np.ndarray) -> PlsSolution:
    """Solve the PLS problem at ``theta`` (engine order) for beta, b and their covariances."""
    blocks = fz.blocks
    f: Factor = fz.factor(theta)
    L = np.tril(f.L)
    mr, p = blocks.m_random, blocks.p
    factors = f.factors
    x2 = triangular_solve_transposed(L[:-1, :-1], L[-1, :-1]) if blocks.m > 1 else np.zeros(0)
    u_rest, beta = x2[:mr], x2[mr : mr + p]
    b_rest = []
    for k, off in enumerate(blocks.offsets):
        lk, pk = blocks.nlevels[k + 1], blocks.dims[k + 1]
        b_rest.append(u_rest[off : off + lk * pk].reshape(lk, pk) @ factors[k + 1].T)
    z = np.concatenate([np.concatenate([b.ravel() for b in b_rest]) if b_rest else [], beta,
                        [-1.0]])
    T1 = factors[0]
    # conditional covariances (lme4's condVar: given beta), in units of sigma^2
    C = None
    if mr:
        # (L_r L_r')^{-1} from the factor (LAPACK dpotri: lower triangle), then symmetrized
        Sinv, info = lapack.dpotri(L[:mr, :mr], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri failed (info={info})")
        Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
        C = _lambda_rest(Sinv, blocks, factors, left=False, right=True)
        C = _lambda_rest(C, blocks, factors, left=True, right=False)
    b1, cond1 = fz.elimination.first_term(z, T1, C)
    cond = [cond1]
    for k, off in enumerate(blocks.offsets):
        lk, pk, T = blocks.nlevels[k + 1], blocks.dims[k + 1], factors[k + 1]
        idx = off + np.arange(lk)[:, None] * pk + np.arange(pk)[None, :]
        blocks_u = Sinv[idx[:, :, None], idx[:, None, :]]
        cond.append(T @ blocks_u @ T.T)
    diag = np.diagonal(L)
    LX = L[mr : mr + p, mr : mr + p]
    LX_inv = lower_inverse(LX) if p else np.zeros((0, 0))
    return PlsSolution(
        beta=beta, b=tuple([b1] + b_rest), cond_cov=tuple(cond), pwrss=float(diag[-1] ** 2),
        logdet_L=float(f.logdet_first + 2 * np.sum(np.log(diag[:mr]))),
        logdet_RX=float(2 * np.sum(np.log(diag[mr : mr + p]))), RX_inv_cov=LX_inv.T @ LX_inv)
