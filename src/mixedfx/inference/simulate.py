"""Responses simulated from a fitted LMM (lme4's ``simulate``, unconditional on the modes).

Each simulated response is y* = X beta + offset + sum_k Z_k b*_k + e*, with new random
effects b*_k = sigma T_k u (u standard normal, one vector per level) and residuals
e* ~ N(0, sigma^2 / w), at the fitted beta, theta and sigma. With a residual structure
(``correlation=``, ``variance=``) the residuals are e* = sigma W^-1 z, where W whitens the
structure at its estimates (W R W' = I).

Reproducibility: simulation j draws from its own generator, seeded by the j-th child of
``numpy.random.SeedSequence(seed)``, so column j does not depend on ``nsim`` and the
bootstrap's replicate j uses exactly simulation j (whatever the number of processes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.reterm import theta_to_factor
from ..errors import MixedFXError


def _model_of(res):
    model = getattr(res, "model", None)
    if model is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again "
                           "to simulate from it")
    return model


def _residual_solver(res, model):
    """For a residual structure: z -> e with e ~ N(0, R) when z ~ N(0, I), where R is the
    residual correlation and variance structure at the estimates (W R W' = I, e = W^-1 z);
    None for sigma^2 I residuals."""
    from ..lmm import LmmModel

    if isinstance(model, LmmModel):
        return None
    x = model.from_internal(np.asarray(res.optsum.final, float))
    x[: model.ntheta] = np.asarray(res.theta, float)
    W, _ = model.whitener(x)
    if W is None:
        raise MixedFXError("the residual structure is not valid at the estimates; cannot "
                           "simulate from this fit")
    return WhitenerInverse(W)


class WhitenerInverse:
    """z -> W^-1 z for a whitening matrix W (a vector when diagonal); picklable (the sparse
    LU factor is rebuilt where it is first used)."""

    def __init__(self, W) -> None:
        self.W = W if isinstance(W, np.ndarray) else W.tocsc()
        self._lu = None

    def __getstate__(self) -> dict:
        return {"W": self.W, "_lu": None}

    def __call__(self, z: np.ndarray) -> np.ndarray:
        if isinstance(self.W, np.ndarray):  # diagonal: variance functions and weights only
            return z / self.W
        if self._lu is None:
            from scipy.sparse.linalg import splu

            self._lu = splu(self.W)
        return self._lu.solve(z)


class Simulator:
    """Draw responses from a fitted LMM.

    Parameters
    ----------
    model : LmmModel
        The fitted model (design, terms in display order).
    beta, theta : numpy.ndarray
        Fixed effects (aligned with ``model.X``) and theta (display order).
    sigma : float
        Residual standard deviation.
    residual : callable, optional
        Maps standard normal z to residuals with the structure's correlation and variances
        (unit sigma); None for independent residuals with variance sigma^2 / w.
    """

    def __init__(self, model, beta: np.ndarray, theta: np.ndarray, sigma: float,
                 residual=None) -> None:
        self.terms = model.terms
        self.mean = model.X @ np.asarray(beta, float) + model.design.offset
        self.sigma = sigma
        self.sd = sigma / np.sqrt(model.design.weights)
        self.residual = residual
        self.factors, start = [], 0
        for t in self.terms:
            self.factors.append(sigma * theta_to_factor(theta[start : start + t.ntheta], t.dim))
            start += t.ntheta

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One response vector: random effects term by term (levels x dims), then residuals."""
        y = self.mean.copy()
        for t, F in zip(self.terms, self.factors, strict=True):
            b = rng.standard_normal((t.nlevels, t.dim)) @ F.T
            y += np.einsum("ij,ij->i", t.Z, b[t.codes])
        z = rng.standard_normal(len(y))
        if self.residual is None:
            return y + self.sd * z
        return y + self.sigma * self.residual(z)


def simulator(res) -> Simulator:
    """The :class:`Simulator` at a result's estimates."""
    model = _model_of(res)
    return Simulator(model, res.fixef.to_numpy(), np.asarray(res.theta, float), res.sigma,
                     _residual_solver(res, model))


def seeds(seed: int | np.random.SeedSequence | None, n: int) -> list[np.random.SeedSequence]:
    """One child seed per simulation from a single root seed."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(n)


def simulate(res, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Simulate responses from a fitted LMM (lme4's ``simulate(fit, nsim, seed)``).

    Parameters
    ----------
    res : LmmResult
        A fit, with or without a residual correlation or variance structure.
    nsim : int, default 1
        Number of simulated responses.
    seed : int, optional
        Root seed; the same seed gives the same responses.

    Returns
    -------
    pandas.DataFrame
        One column per simulation (``sim_1``, ``sim_2``, ...), one row per observation used
        in the fit.
    """
    if int(nsim) != nsim or nsim < 1:
        raise MixedFXError(f"nsim must be a positive integer, got {nsim}")
    sim = simulator(res)
    cols = {f"sim_{j + 1}": sim.draw(np.random.default_rng(s))
            for j, s in enumerate(seeds(seed, int(nsim)))}
    return pd.DataFrame(cols)
