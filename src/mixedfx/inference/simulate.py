"""Responses simulated from a fitted LMM (lme4's ``simulate``, unconditional on the modes).

Each simulated response is y* = X beta + offset + sum_k Z_k b*_k + e*, with new random
effects b*_k = sigma T_k u (u standard normal, one vector per level) and residuals
e* ~ N(0, sigma^2 / w), at the fitted beta, theta and sigma.

Reproducibility: simulation j draws from its own generator, seeded by the j-th child of
``numpy.random.SeedSequence(seed)``, so column j does not depend on ``nsim`` and the
bootstrap's replicate j uses exactly simulation j (whatever the number of processes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.reterm import theta_to_factor
from ..errors import MixedFXError


def _plain_model(res):
    from ..lmm import LmmModel

    model = getattr(res, "model", None)
    if model is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again "
                           "to simulate from it")
    if not isinstance(model, LmmModel):
        raise MixedFXError("simulation is available for models without a residual correlation "
                           "or variance structure (sigma^2 I residuals)")
    return model


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
    """

    def __init__(self, model, beta: np.ndarray, theta: np.ndarray, sigma: float) -> None:
        self.terms = model.terms
        self.mean = model.X @ np.asarray(beta, float) + model.design.offset
        self.sd = sigma / np.sqrt(model.design.weights)
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
        return y + self.sd * rng.standard_normal(len(y))


def simulator(res) -> Simulator:
    """The :class:`Simulator` at a result's estimates."""
    model = _plain_model(res)
    return Simulator(model, res.fixef.to_numpy(), np.asarray(res.theta, float), res.sigma)


def seeds(seed: int | np.random.SeedSequence | None, n: int) -> list[np.random.SeedSequence]:
    """One child seed per simulation from a single root seed."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(n)


def simulate(res, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Simulate responses from a fitted LMM (lme4's ``simulate(fit, nsim, seed)``).

    Parameters
    ----------
    res : LmmResult
        A fit without residual structure.
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
