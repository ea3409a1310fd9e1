"""Responses simulated from a fitted GLMM, and the parametric bootstrap of its parameters.

As lme4's ``simulate`` and ``bootMer`` for ``glmer`` fits: each simulation draws new random
effects b*_k = T_k u (u standard normal per level; the relative factors are the random
effects' own scale in a GLMM), forms mu* = g^-1(offset + X beta + sum_k Z_k b*_k) and draws
the response from the family with those means, the prior weights (binomial trials) and the
estimated dispersion (Gamma, inverse Gaussian). Simulation j uses its own generator, seeded by
the j-th child of ``numpy.random.SeedSequence(seed)``, so it does not depend on ``nsim`` or on
the number of processes of the bootstrap.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from ..design.reterm import theta_to_factor
from ..errors import MixedFXError
from ..inference.bootstrap import BootstrapResult, run_replicates
from ..inference.parameters import SdCorScale
from ..inference.simulate import seeds


def _model_of(res):
    model = getattr(res, "model", None)
    if model is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again "
                           "to simulate from it")
    if res.method not in ("laplace", "agq"):
        raise MixedFXError(f"simulation needs a likelihood fit (method 'laplace' or 'agq'), "
                           f"not '{res.method}'")
    return model


class GlmmSimulator:
    """Draw responses from a fitted GLMM at its estimates.

    Parameters
    ----------
    model : GlmmModel
    beta, theta : numpy.ndarray
        Fixed effects (aligned with ``model.X``) and theta (display order).
    dispersion : float
        The family's dispersion (1 for binomial, Poisson, negative binomial).
    """

    def __init__(self, model, beta: np.ndarray, theta: np.ndarray, dispersion: float) -> None:
        self.model = model
        self.family = model.family
        self.fixed = model.X @ np.asarray(beta, float) + model.offset
        self.dispersion = float(dispersion)
        self.factors, start = [], 0
        for t in model.terms:
            self.factors.append(theta_to_factor(theta[start : start + t.ntheta], t.dim))
            start += t.ntheta

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One response vector on the family's scale (proportions for the binomial)."""
        eta = self.fixed.copy()
        for t, F in zip(self.model.terms, self.factors, strict=True):
            b = rng.standard_normal((t.nlevels, t.dim)) @ F.T
            eta += np.einsum("ij,ij->i", t.Z, b[t.codes])
        mu = self.family.linkinv(eta)
        return self.family.sample(mu, self.model.prior, rng, self.dispersion)


def simulator(res) -> GlmmSimulator:
    """The simulator at a GLMM result's estimates."""
    model = _model_of(res)
    return GlmmSimulator(model, res.fixef.to_numpy(), np.asarray(res.theta, float),
                         res.dispersion)


def simulate(res, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Simulate responses from a fitted GLMM (lme4's ``simulate(fit, nsim, seed)``).

    Parameters
    ----------
    res : GlmmResult
        A Laplace or AGQ fit.
    nsim : int, default 1
    seed : int, optional
        Root seed; the same seed gives the same responses.

    Returns
    -------
    pandas.DataFrame
        One column per simulation (``sim_1``, ...), one row per observation used in the fit,
        on the response's scale in the fit (0/1 or proportions for the binomial, counts for
        Poisson).
    """
    if int(nsim) != nsim or nsim < 1:
        raise MixedFXError(f"nsim must be a positive integer, got {nsim}")
    sim = simulator(res)
    draws = [sim.draw(np.random.default_rng(s)) for s in seeds(seed, int(nsim))]
    return pd.DataFrame(np.column_stack(draws),
                        columns=[f"sim_{j + 1}" for j in range(int(nsim))])


class _Job:
    """One bootstrap replicate: simulate, refit from the original estimates, collect."""

    def __init__(self, res, sim: GlmmSimulator, scale: SdCorScale) -> None:
        self.model, self.sim, self.scale = res.model, sim, scale
        self.method, self.n_agq = res.method, res.n_agq
        self.start = (np.asarray(res.theta, float), res.fixef.to_numpy())
        self.size = scale.size - 1 + len(res.fixef)

    def run(self, seed: np.random.SeedSequence) -> tuple[np.ndarray, bool, bool]:
        from .agq import fit_agq
        from .laplace import fit_laplace
        from .pirls import PirlsError

        y = self.sim.draw(np.random.default_rng(seed))
        model = self.model.with_response(y)
        theta0, beta0 = self.start
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.method == "agq" and self.n_agq > 1:
                    fit = fit_agq(model, n_agq=self.n_agq, theta0=theta0, beta0=beta0,
                                  control={"hessian": False})
                else:
                    fit = fit_laplace(model, n_agq=self.n_agq, theta0=theta0, beta0=beta0,
                                      control={"hessian": False})
        except (PirlsError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            return np.full(self.size, np.nan), False, False
        theta = np.asarray(fit.theta, float)
        par = np.concatenate([self.scale.from_theta(theta, 1.0)[:-1], fit.beta])
        opt = fit.opt if fit.opt is not None else fit.opt0
        lower = model.theta_lower
        singular = bool(np.any(np.abs(theta[np.isfinite(lower)]) < 1e-4))
        return par, bool(opt.converged), singular


def bootstrap(res, n: int = 500, *, seed: int | None = None, n_jobs: int = 1,
              progress: bool | None = None) -> BootstrapResult:
    """Parametric bootstrap of a GLMM (lme4's ``bootMer``): simulate, refit, collect.

    Parameters
    ----------
    res : GlmmResult
        A Laplace or AGQ fit of a family with a fixed dispersion (binomial, Poisson).
    n : int, default 500
    seed : int, optional
        Root seed: the same seed gives the same replicates, whatever ``n_jobs``.
    n_jobs : int, default 1
        Worker processes (-1: one per core).
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).

    Returns
    -------
    BootstrapResult
        Replicates of ``sd_...``/``cor_...`` and the fixed effects; ``confint()`` gives
        percentile intervals.
    """
    if not res.family_object.fixed_dispersion:
        raise MixedFXError(f"the GLMM bootstrap needs a family with a fixed dispersion, not "
                           f"{res.family}")
    sim = simulator(res)
    scale = SdCorScale(res.model.terms)
    job = _Job(res, sim, scale)
    start = time.perf_counter()
    rows = run_replicates(job, n, seed=seed, n_jobs=n_jobs, progress=progress)
    table = np.array([r[0] for r in rows]).reshape(len(rows), job.size)
    names = scale.names[:-1] + list(res.fixef.index)
    index = pd.Index(names, dtype=object)
    estimates = np.concatenate([scale.from_theta(np.asarray(res.theta, float), 1.0)[:-1],
                                res.fixef.to_numpy()])
    failed = int(np.isnan(table).any(axis=1).sum())
    if failed:
        warnings.warn(f"{failed} of {len(rows)} bootstrap refits failed; they are NaN in the "
                      "replicates and left out of the intervals", RuntimeWarning, stacklevel=2)
    return BootstrapResult(replicates=pd.DataFrame(table, columns=index),
                           estimates=pd.Series(estimates, index=index, name="estimate"),
                           converged=np.array([r[1] for r in rows], dtype=bool),
                           singular=np.array([r[2] for r in rows], dtype=bool), seed=seed,
                           reml=False, seconds=time.perf_counter() - start)
