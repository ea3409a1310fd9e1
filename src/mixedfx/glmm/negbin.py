"""Negative binomial GLMM with estimated dispersion, as lme4's ``glmer.nb``.

The negative binomial with mean mu and shape theta (variance mu + mu^2 / theta) is a GLM
family only for known theta. As ``glmer.nb`` does:

1. fit the Poisson GLMM (same formula, log link);
2. start theta at its ML estimate given the Poisson fit's conditional means (MASS's
   ``theta.ml``: Newton steps on the score in theta);
3. maximize the Laplace log-likelihood of the GLMM refitted at fixed theta over log theta,
   by a bounded scalar search on [log theta0 - 3, log theta0 + 3] (lme4 uses R's
   ``optimize``, tolerance 5e-5; here 1e-6), each refit starting from the previous one.

The reported fixed effects, standard errors and variance components are those of the fit at
the optimal theta (their uncertainty ignores theta's, as lme4's do).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from ..errors import ConvergenceWarning

THETA_INTERVAL = 3.0  # search log theta within +- this of the start
THETA_XTOL = 1e-6  # on log theta


def theta_score(theta: float, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    """d/d theta of the negative binomial log-likelihood at fixed means."""
    return float(np.sum(w * (special.digamma(theta + y) - special.digamma(theta)
                             + np.log(theta) + 1 - np.log(theta + mu)
                             - (y + theta) / (mu + theta))))


def theta_information(theta: float, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    """Minus the second derivative in theta of the log-likelihood at fixed means."""
    return float(np.sum(w * (-special.polygamma(1, theta + y) + special.polygamma(1, theta)
                             - 1 / theta + 2 / (mu + theta) - (y + theta) / (mu + theta) ** 2)))


def theta_ml(y: np.ndarray, mu: np.ndarray, weights: np.ndarray | None = None, *,
             maxiter: int = 20, tol: float = 1e-8) -> float:
    """Maximum-likelihood theta of a negative binomial with known means (Newton's method
    from the moment estimate n / sum w (y / mu - 1)^2, as MASS's ``theta.ml``).

    Parameters
    ----------
    y, mu : numpy.ndarray
        Counts and their means.
    weights : numpy.ndarray, optional
        Prior weights (ones by default).

    Returns
    -------
    float
        theta; ``inf`` when the counts show no overdispersion (the score stays positive).
    """
    y, mu = np.asarray(y, float), np.asarray(mu, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    spread = float(np.sum(w * (y / mu - 1) ** 2))
    if spread == 0:
        return np.inf
    theta = float(np.sum(w) / spread)
    for _ in range(maxiter):
        theta = abs(theta)
        step = theta_score(theta, y, mu, w) / theta_information(theta, y, mu, w)
        theta += step
        if not np.isfinite(theta) or theta > 1e8:
            return np.inf
        if abs(step) < tol * max(1.0, abs(theta)):
            return abs(theta)
    if theta_score(abs(theta), y, mu, w) > 0:  # still rising: no finite maximum
        return np.inf
    return abs(theta)


@dataclass(frozen=True, eq=False)
class ThetaSearch:
    """Outcome of the search over theta.

    Attributes
    ----------
    theta : float
        Estimated negative binomial shape.
    fit : object
        The GLMM fitted at ``theta``.
    evaluations : int
        Number of GLMM refits.
    theta_start : float
        Starting value (ML theta given the Poisson fit's means).
    converged : bool
        The search stopped inside the interval, not on its edge.
    """

    theta: float
    fit: object
    evaluations: int
    theta_start: float
    converged: bool


def search_theta(fit_at: Callable[[float, object], object], loglik: Callable[[object], float],
                 theta_start: float, *, xtol: float = THETA_XTOL) -> ThetaSearch:
    """Maximize ``loglik(fit_at(theta, previous_fit))`` over log theta.

    Parameters
    ----------
    fit_at : callable
        ``fit_at(theta, previous)`` refits the GLMM with the negative binomial at ``theta``,
        starting from the previous fit (None the first time).
    loglik : callable
        Log-likelihood of a fit.
    theta_start : float
        Starting theta; the search runs over log theta_start +- 3.
    """
    fits: dict[float, object] = {}
    last: list[object] = [None]

    def objective(log_theta: float) -> float:
        fit = fit_at(float(np.exp(log_theta)), last[0])
        last[0] = fits[log_theta] = fit
        return -2 * loglik(fit)

    center = float(np.log(theta_start))
    lo, hi = center - THETA_INTERVAL, center + THETA_INTERVAL
    res = optimize.minimize_scalar(objective, bounds=(lo, hi), method="bounded",
                                   options={"xatol": xtol})
    best = min(fits, key=lambda t: -2 * loglik(fits[t]))
    on_edge = min(best - lo, hi - best) < 10 * xtol
    if on_edge:
        warnings.warn(f"the negative binomial theta search stopped at the edge of its interval "
                      f"(theta = {np.exp(best):.4g}); the counts may show no overdispersion "
                      "(try a Poisson model) or theta is poorly determined",
                      ConvergenceWarning, stacklevel=3)
    return ThetaSearch(theta=float(np.exp(best)), fit=fits[best], evaluations=int(res.nfev),
                       theta_start=float(theta_start), converged=bool(res.success) and not on_edge)
