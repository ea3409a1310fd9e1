"""Negative binomial GLMM with estimated dispersion, as lme4's ``glmer.nb``.

The negative binomial with mean mu and shape theta (variance mu + mu^2 / theta) is a GLM
family only for known theta. As ``glmer.nb`` does:

1. fit the Poisson GLMM (same formula, log link);
2. start theta at its ML estimate given the Poisson fit's conditional means (MASS's
   ``theta.ml``: Newton steps on the score in theta);
3. maximize the Laplace log-likelihood of the GLMM refitted at fixed theta over log theta,
   within [log theta0 - 3, log theta0 + 3] (lme4 uses R's ``optimize`` there, tolerance
   5e-5): steps from the start until the optimum is bracketed, then Brent's method, each
   refit starting from the previous one (fewer refits than a search of the whole interval).

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
THETA_XTOL = 5e-5  # on log theta, as lme4's glmer.nb


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

    Steps of 0.5 from the start (doubling) until the deviance rises again, within
    log theta_start +- 3 (lme4's interval), then Brent's method inside that bracket. Each
    theta is fitted once (the fits are kept), each fit starting from the previous one.

    Parameters
    ----------
    fit_at : callable
        ``fit_at(theta, previous)`` refits the GLMM with the negative binomial at ``theta``,
        starting from the previous fit (None the first time).
    loglik : callable
        Log-likelihood of a fit.
    theta_start : float
        Starting theta.
    xtol : float
        Tolerance on log theta (lme4: 5e-5).
    """
    fits: dict[float, object] = {}
    last: list[object] = [None]
    center = float(np.log(theta_start))
    shift = 10.0 - center  # Brent's tolerance is relative to |x|: keep |x| near 10

    def deviance(log_theta: float) -> float:
        key = round(float(log_theta), 12)
        if key not in fits:
            fits[key] = last[0] = fit_at(float(np.exp(key)), last[0])
        return -2 * loglik(fits[key])

    lo, hi = center - THETA_INTERVAL, center + THETA_INTERVAL
    a, b, step = center, center + 0.5, 0.5
    if deviance(b) > deviance(a):
        a, b, step = b, a, -step  # downhill is towards smaller theta
    c = float(np.clip(b + 2 * step, lo, hi))
    while deviance(c) < deviance(b) and lo < c < hi:
        step *= 2
        a, b, c = b, c, float(np.clip(c + 2 * step, lo, hi))
    on_edge = deviance(c) <= deviance(b)
    if not on_edge:
        bracket = tuple(x + shift for x in sorted((a, b, c)))
        mid = b + shift
        optimize.minimize_scalar(lambda x: deviance(x - shift), method="brent",
                                 bracket=(bracket[0], mid, bracket[2]),
                                 options={"xtol": xtol / 10.0})
    best = min(fits, key=lambda t: -2 * loglik(fits[t]))
    if on_edge:
        warnings.warn(f"the negative binomial theta search stopped at the edge of its interval "
                      f"(theta = {np.exp(best):.4g}); the counts may show no overdispersion "
                      "(try a Poisson model) or theta is poorly determined",
                      ConvergenceWarning, stacklevel=3)
    return ThetaSearch(theta=float(np.exp(best)), fit=fits[best], evaluations=len(fits),
                       theta_start=float(theta_start), converged=not on_edge)


def fit_negbin(formula: str, data: object, *, link: str | None = None,
               method: str = "laplace", n_agq: int = 1, weights: object = None,
               offset: object = None, control: dict | None = None,
               data_name: str | None = None):
    """Negative binomial GLMM with its shape theta estimated, as lme4's ``glmer.nb``.

    Parameters
    ----------
    formula, data, link, weights, offset, data_name :
        As :func:`mixedfx.glmm` (link ``"log"`` by default).
    method : {"laplace", "agq"}
        The likelihood maximized over theta (PQL has none).
    n_agq : int
        As :func:`mixedfx.glmm`.
    control : dict, optional
        Settings of each GLMM fit (as :func:`mixedfx.glmm`), plus ``theta_xtol`` (1e-6 on
        log theta).

    Returns
    -------
    GlmmResult
        The fit at the estimated theta; ``family`` reads ``Negative Binomial(theta)`` as
        lme4 prints it, ``family_object.theta`` holds theta, and ``npar``, ``aic`` and
        ``bic`` count theta as a parameter (as lme4's do).
    """
    from dataclasses import replace

    from ..families import NegativeBinomial, Poisson
    from .api import fit_model
    from .model import GlmmModel

    if method == "pql":
        raise ValueError("the negative binomial shape is estimated by maximizing the "
                         "likelihood, which PQL does not have: use method='laplace' or 'agq', "
                         "or pass mixedfx.families.NegativeBinomial(theta) with a fixed theta")
    settings = dict(control or {})
    xtol = float(settings.pop("theta_xtol", THETA_XTOL))
    poisson = GlmmModel.build(formula, data, Poisson(link), weights, offset)
    with warnings.catch_warnings():  # the Poisson fit is only a start
        warnings.simplefilter("ignore")
        start = fit_model(poisson, method=method, n_agq=n_agq, control=settings)
    theta0 = theta_ml(poisson.y, start.fitted, poisson.prior)
    if not np.isfinite(theta0):
        raise ValueError("the counts show no overdispersion given the Poisson fit (the "
                         "negative binomial shape theta goes to infinity): fit "
                         "family='poisson' instead")

    caught: dict[int, list] = {}

    def fit_at(theta: float, previous):
        model = poisson.with_family(NegativeBinomial(theta, link))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            fit = fit_model(model, method=method, n_agq=n_agq, control=settings,
                            start=previous or start, data_name=data_name)
        caught[id(fit)] = record
        return fit

    found = search_theta(fit_at, lambda fit: fit.loglik, theta0, xtol=xtol)
    best = found.fit
    for w in caught[id(best)]:  # the warnings of the fit reported (singular, optimizer)
        warnings.warn(w.message, w.category, stacklevel=2)
    npar = best.npar + 1
    return replace(best, family=f"Negative Binomial({found.theta:.4g})", npar=npar,
                   aic=-2 * best.loglik + 2 * npar,
                   bic=-2 * best.loglik + np.log(best.nobs) * npar,
                   converged=best.converged and found.converged)
