"""The blocked engine against a dense brute-force evaluation of the same likelihood.

For random theta the profiled ML deviance and REML criterion must equal the textbook
formulas with V = Z Lambda Lambda' Z' + W^{-1}: this covers vector terms in the dense
remainder, crossed and nested terms, weights and offsets, which the R references do not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfx.design import build_design
from mixedfx.design.reterm import theta_to_factor
from mixedfx.formula import parse_formula
from mixedfx.linalg.blocks import build_blocks
from mixedfx.linalg.pls import PlsFactorizer, profiled_deviance
from mixedfx.linalg.solution import solve
from mixedfx.lmm import ThetaMap, display_order, engine_permutation


def simulated(seed: int = 1, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "g1": rng.integers(0, 12, n), "g2": rng.choice(list("abcdefgh"), n),
        "g3": rng.integers(0, 30, n), "x": rng.normal(size=n), "z": rng.normal(size=n),
        "f": rng.choice(["lo", "mid", "hi"], n), "w": rng.uniform(0.5, 2.0, n),
        "o": rng.normal(size=n)})
    df["y"] = 1 + df.x + rng.normal(size=n) + rng.normal(size=12)[df.g1]
    return df


def dense_z(terms) -> np.ndarray:
    blocks = []
    for t in terms:
        Z = np.zeros((len(t.codes), t.nlevels * t.dim))
        for a in range(t.dim):
            Z[np.arange(len(t.codes)), t.codes * t.dim + a] = t.Z[:, a]
        blocks.append(Z)
    return np.hstack(blocks)


def brute_force(terms, theta, X, y, w, reml):
    Z = dense_z(terms)
    lam, start = [], 0
    for t in terms:
        T = theta_to_factor(theta[start : start + t.ntheta], t.dim)
        lam.append(np.kron(np.eye(t.nlevels), T))
        start += t.ntheta
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    s = 0
    for blk in lam:
        Lam[s : s + blk.shape[0], s : s + blk.shape[0]] = blk
        s += blk.shape[0]
    V = Z @ Lam @ Lam.T @ Z.T + np.diag(1 / w)
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    n, p = X.shape
    dof = n - p if reml else n
    s2 = r @ Vi @ r / dof
    dev = dof * (1 + np.log(2 * np.pi * s2)) + np.linalg.slogdet(V)[1]
    if reml:
        dev += np.linalg.slogdet(X.T @ Vi @ X)[1]
    # conditional modes and covariances (given beta, in units of sigma^2), as lme4's condVar
    ZL = Z @ Lam
    Cinv = np.linalg.inv(ZL.T @ (w[:, None] * ZL) + np.eye(ZL.shape[1]))
    b = Lam @ Cinv @ ZL.T @ (w * r)
    cov = Lam @ Cinv @ Lam.T
    return dev, beta, b, cov


FORMULAS = [
    "y ~ x + (1 + x | g1) + (1 + z | g2)",
    "y ~ x + f + (1 | g3) + (1 + x | g1)",
    "y ~ x + (1 | g1/g2) + (0 + z | g3)",
    "y ~ x * z + (x || g1) + (1 + x + z | g2)",
    "y ~ 1 + (f | g1) + (1 | g2:g3)",
]


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_deviance_matches_dense_formula(formula, reml):
    df = simulated()
    d = build_design(parse_formula(formula), df, weights="w", offset="o")
    terms = display_order(d.terms)
    perm = engine_permutation(terms)
    tmap = ThetaMap(terms, perm)
    y = d.y - d.offset
    blocks = build_blocks([terms[k] for k in perm], d.X, y, d.weights)
    fz = PlsFactorizer(blocks)
    rng = np.random.default_rng(7)
    for _ in range(3):
        theta = np.concatenate([t.theta_initial() * rng.uniform(0.2, 1.5, t.ntheta)
                                + (1 - t.theta_initial()) * rng.normal(0, 0.3, t.ntheta)
                                for t in terms])
        got = profiled_deviance(fz.factor(tmap.to_engine(theta)), blocks, reml)
        expected, beta, b, cov = brute_force(terms, theta, d.X, y, d.weights, reml)
        # the dense formula's log|V| already includes -sum(log w)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-8)
        sol = solve(fz, tmap.to_engine(theta))
        np.testing.assert_allclose(sol.beta, beta, rtol=1e-7, atol=1e-9)
        start = np.cumsum([0] + [t.nlevels * t.dim for t in terms])
        for pos, k in enumerate(perm):
            t, s = terms[k], start[k]
            np.testing.assert_allclose(sol.b[pos].ravel(), b[s : s + t.nlevels * t.dim],
                                       rtol=1e-6, atol=1e-9)
            idx = s + np.arange(t.nlevels)[:, None] * t.dim + np.arange(t.dim)[None, :]
            dense = cov[idx[:, :, None], idx[:, None, :]]
            np.testing.assert_allclose(sol.cond_cov[pos], dense, rtol=1e-6, atol=1e-10)


def test_objective_is_smooth_at_the_resolution_the_optimizer_needs():
    """Near the optimum the profiled deviance is a clean parabola in steps of 5e-6.

    The blocks hold y minus its least-squares fit on X; with the raw y (y'y about 1e4
    times the residual sum on Pastes) rounding noise of 3e-10 swamped the curvature.
    """
    import mixedfx
    from mixedfx.lmm import LmmModel

    pastes = mixedfx.datasets.load("Pastes")
    model = LmmModel.from_formula("strength ~ 1 + (1 | batch/cask)", pastes)
    theta = np.array([3.52690131, 1.56346182])
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = 5e-6
        values = np.array([model.objective(theta + k * step) for k in range(-4, 5)])
        second = values[:-2] - 2 * values[1:-1] + values[2:]
        assert np.all(second > 0), (axis, second)
