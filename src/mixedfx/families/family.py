"""Exponential families (and the negative binomial at fixed shape) for GLMMs.

A family pairs a variance function with a link and knows its deviance residuals, its full
per-observation log-likelihood (with every normalizing constant: binomial coefficients,
log y!, ...), whether its dispersion is fixed at 1, and how to check a response. The solvers
use only these methods: no family-specific branches.

Conventions (as R's ``glm``): ``y`` is on the family's scale (proportions for the binomial),
``wt`` are prior weights (the numbers of trials for binomial proportions) and the
log-likelihood of an observation with dispersion phi is that of the response distribution
with weight ``wt``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import DataError
from . import kernels
from .links import Link, get_link

_LOG_2PI = float(np.log(2 * np.pi))


def _weights(y: np.ndarray, wt: object) -> np.ndarray:
    return np.ones_like(y) if wt is None else np.asarray(wt, dtype=float)


def _where(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return f"row{'s' if len(rows) > 1 else ''} {shown}{' ...' if len(rows) > 5 else ''}"


class Family:
    """Base class: a variance function with a link.

    Attributes
    ----------
    name : str
        R's family name (``"binomial"``, ``"poisson"``, ``"Gamma"``, ...).
    link : Link
        The link object (``link.name`` its R name).
    fixed_dispersion : bool
        True when the dispersion is 1 (binomial, Poisson, negative binomial at fixed theta);
        False when it is estimated (Gamma, inverse Gaussian).
    """

    name: str = ""
    links: tuple[str, ...] = ()
    default_link: str = ""
    fixed_dispersion: bool = True

    def __init__(self, link: str | Link | None = None) -> None:
        chosen = get_link(self.default_link if link is None else link)
        if chosen.name not in self.links:
            raise ValueError(f"link '{chosen.name}' is not available for the {self.name} "
                             f"family; valid links: {', '.join(self.links)}")
        self.link = chosen

    # -- the link, delegated ---------------------------------------------------------
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """g(mu)."""
        return self.link.linkfun(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """g^-1(eta)."""
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta."""
        return self.link.mu_eta(eta)

    def valid_eta(self, eta: np.ndarray) -> bool:
        """Whether the linear predictor maps to valid means."""
        return self.link.valid_eta(eta)

    def valid_mu(self, mu: np.ndarray) -> bool:
        """Whether the means are inside the family's range."""
        return bool(np.all(np.isfinite(mu)))

    # -- the distribution ------------------------------------------------------------
    def variance(self, mu: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Variance function V(mu)."""
        raise NotImplementedError

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: object = None) -> np.ndarray:
        """Squared deviance residuals (unit deviances times prior weights)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def loglik(self, y: np.ndarray, mu: np.ndarray, wt: object = None,
               dispersion: float = 1.0) -> np.ndarray:
        """Per-observation log-likelihood with all normalizing constants."""
        raise NotImplementedError  # pragma: no cover - abstract

    def kernel(self, y: np.ndarray, mu: np.ndarray, wt: object = None) -> np.ndarray:
        """The part of the per-observation log-likelihood (dispersion 1) that depends on mu:
        ``loglik(y, mu, wt) = kernel(y, mu, wt) + c(y, wt)``. Cheaper than ``dev_resids``
        where it skips the saturated terms; -0.5 dev_resids by default."""
        return -0.5 * self.dev_resids(y, mu, wt)

    def kernel_sum(self, y: np.ndarray, mu: np.ndarray, wt: object = None) -> float:
        """``sum(kernel(y, mu, wt))`` (one compiled pass for some families)."""
        return float(np.sum(self.kernel(y, mu, wt)))

    def inverse(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(linkinv(eta), mu_eta(eta))`` in one pass where the link has a kernel."""
        return self.link.inverse(eta)

    def mustart(self, y: np.ndarray, wt: object = None) -> np.ndarray:
        """Starting means for IRLS (inside the family's range)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def sample(self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator,
               dispersion: float = 1.0) -> np.ndarray:
        """Responses drawn with means ``mu``, prior weights ``wt`` and the dispersion, on the
        family's scale (as ``y`` is given to the fit)."""
        raise NotImplementedError(f"simulation is not available for the {self.name} "
                                  "family")  # pragma: no cover - abstract

    def validate(self, y: np.ndarray, weights: object = None, name: str = "response") -> None:
        """Raise DataError when the response or the prior weights do not fit the family."""
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)):
            raise DataError(f"the {name} has non-finite values at {_where(~np.isfinite(y))}")
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            bad = ~np.isfinite(w) | (w < 0)
            if bad.any():
                raise DataError(f"prior weights must be finite and non-negative; see "
                                f"{_where(bad)}")

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, wt: object = None) -> np.ndarray:
        """Signed deviance residuals sign(y - mu) sqrt(dev_resids)."""
        d = np.maximum(self.dev_resids(y, mu, wt), 0.0)
        return np.sign(np.asarray(y, dtype=float) - mu) * np.sqrt(d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link='{self.link.name}')"

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other.link == self.link
                and getattr(other, "theta", None) == getattr(self, "theta", None))

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name, getattr(self, "theta", None)))


class Binomial(Family):
    """Binomial proportions y = successes / trials with the trials as prior weights
    (0/1 responses have weight 1)."""

    name = "binomial"
    links = ("logit", "probit", "cloglog", "log")
    default_link = "logit"

    def valid_mu(self, mu):
        mu = np.asarray(mu, dtype=float)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0) and np.all(mu < 1))

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1 - mu)

    def dev_resids(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        wt = _weights(y, wt)
        return 2 * wt * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))

    def loglik(self, y, mu, wt=None, dispersion=1.0):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        m = _weights(y, wt)
        k = np.round(m * y)
        m = np.round(m)
        coef = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        return coef + special.xlogy(k, mu) + special.xlog1py(m - k, -mu)

    def kernel(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return _weights(y, wt) * (y * np.log(mu) + (1 - y) * np.log1p(-mu))

    def kernel_sum(self, y, mu, wt=None):
        y = np.ascontiguousarray(y, dtype=float)
        return float(kernels.binomial_kernel(y, np.ascontiguousarray(mu, dtype=float),
                                             np.ascontiguousarray(_weights(y, wt))))

    def mustart(self, y, wt=None):
        y = np.asarray(y, dtype=float)
        wt = _weights(y, wt)
        return (wt * y + 0.5) / (wt + 1)

    def validate(self, y, weights=None, name="response"):
        super().validate(y, weights, name)
        y = np.asarray(y, dtype=float)
        if np.any(y < 0):
            raise DataError(f"the binomial {name} must be 0/1, a proportion in [0, 1] or "
                            f"cbind(successes, failures); negative values at {_where(y < 0)}")
        if np.any(y > 1):
            what = ("successes exceed trials" if weights is not None
                    else "values above 1 (for counts use cbind(successes, failures) or "
                         "proportions with weights = trials)")
            raise DataError(f"the binomial {name} must lie in [0, 1]: {what} at "
                            f"{_where(y > 1)}")
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            k = w * y
            off = np.abs(k - np.round(k)) > 1e-7 * np.maximum(1.0, np.abs(k))
            if off.any():
                raise DataError(f"the binomial {name} times the weights (trials) must give "
                                f"whole numbers of successes; non-integer at {_where(off)}")

    def sample(self, mu, wt, rng, dispersion=1.0):
        trials = np.round(np.asarray(wt, dtype=float)).astype(np.int64)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)


class Poisson(Family):
    """Poisson counts."""

    name = "poisson"
    links = ("log", "identity")
    default_link = "log"

    def valid_mu(self, mu):
        mu = np.asarray(mu, dtype=float)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def variance(self, mu):
        return np.array(mu, dtype=float)

    def dev_resids(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return 2 * _weights(y, wt) * (special.xlogy(y, y / mu) - (y - mu))

    def loglik(self, y, mu, wt=None, dispersion=1.0):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return _weights(y, wt) * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))

    def kernel(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return _weights(y, wt) * (y * np.log(mu) - mu)

    def kernel_sum(self, y, mu, wt=None):
        y = np.ascontiguousarray(y, dtype=float)
        return float(kernels.poisson_kernel(y, np.ascontiguousarray(mu, dtype=float),
                                            np.ascontiguousarray(_weights(y, wt))))

    def mustart(self, y, wt=None):
        return np.asarray(y, dtype=float) + 0.1

    def validate(self, y, weights=None, name="response"):
        super().validate(y, weights, name)
        _check_counts(np.asarray(y, dtype=float), "Poisson", name)

    def sample(self, mu, wt, rng, dispersion=1.0):
        return rng.poisson(mu).astype(float)


def _check_counts(y: np.ndarray, family: str, name: str) -> None:
    if np.any(y < 0):
        raise DataError(f"the {family} {name} must be non-negative counts; negative values at "
                        f"{_where(y < 0)}")
    off = y != np.round(y)
    if off.any():
        raise DataError(f"the {family} {name} must be whole-number counts; non-integer values "
                        f"at {_where(off)}")


def _check_positive(y: np.ndarray, family: str, name: str) -> None:
    if np.any(y <= 0):
        raise DataError(f"the {family} {name} must be positive; values <= 0 at "
                        f"{_where(y <= 0)}")


class Gamma(Family):
    """Gamma with shape wt / phi and mean mu (dispersion phi estimated)."""

    name = "Gamma"
    links = ("inverse", "log", "identity")
    default_link = "inverse"
    fixed_dispersion = False

    def valid_mu(self, mu):
        mu = np.asarray(mu, dtype=float)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def variance(self, mu):
        return np.asarray(mu, dtype=float) ** 2

    def dev_resids(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return -2 * _weights(y, wt) * (np.log(y / mu) - (y - mu) / mu)

    def loglik(self, y, mu, wt=None, dispersion=1.0):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        a = _weights(y, wt) / dispersion
        return special.xlogy(a, a * y / mu) - a * y / mu - np.log(y) - special.gammaln(a)

    def mustart(self, y, wt=None):
        return np.array(y, dtype=float)

    def validate(self, y, weights=None, name="response"):
        super().validate(y, weights, name)
        _check_positive(np.asarray(y, dtype=float), "Gamma", name)

    def sample(self, mu, wt, rng, dispersion=1.0):
        shape = np.asarray(wt, dtype=float) / dispersion
        return rng.gamma(shape, np.asarray(mu, dtype=float) / shape)


class InverseGaussian(Family):
    """Inverse Gaussian with mean mu and dispersion phi (variance phi mu^3 / wt)."""

    name = "inverse.gaussian"
    links = ("1/mu^2", "inverse", "log", "identity")
    default_link = "1/mu^2"
    fixed_dispersion = False

    def valid_mu(self, mu):
        mu = np.asarray(mu, dtype=float)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def variance(self, mu):
        return np.asarray(mu, dtype=float) ** 3

    def dev_resids(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return _weights(y, wt) * (y - mu) ** 2 / (y * mu**2)

    def loglik(self, y, mu, wt=None, dispersion=1.0):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        wt = _weights(y, wt)
        return -0.5 * (_LOG_2PI + np.log(dispersion * y**3 / wt)
                       + wt * (y - mu) ** 2 / (dispersion * y * mu**2))

    def mustart(self, y, wt=None):
        return np.array(y, dtype=float)

    def validate(self, y, weights=None, name="response"):
        super().validate(y, weights, name)
        _check_positive(np.asarray(y, dtype=float), "inverse Gaussian", name)

    def sample(self, mu, wt, rng, dispersion=1.0):
        return rng.wald(mu, np.asarray(wt, dtype=float) / dispersion)


class NegativeBinomial(Family):
    """Negative binomial counts with mean mu and shape theta fixed at construction
    (variance mu + mu^2 / theta), as MASS's ``negative.binomial(theta)``."""

    name = "negative.binomial"
    links = ("log", "identity")
    default_link = "log"

    def __init__(self, theta: float, link: str | Link | None = None) -> None:
        theta = float(theta)
        if not np.isfinite(theta) or theta <= 0:
            raise ValueError(f"the negative binomial shape theta must be positive and finite, "
                             f"not {theta}")
        super().__init__(link)
        self.theta = theta

    def valid_mu(self, mu):
        mu = np.asarray(mu, dtype=float)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu + mu**2 / self.theta

    def dev_resids(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        th = self.theta
        return 2 * _weights(y, wt) * (special.xlogy(y, y / mu)
                                      - (y + th) * np.log((y + th) / (mu + th)))

    def loglik(self, y, mu, wt=None, dispersion=1.0):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        th = self.theta
        return _weights(y, wt) * (special.gammaln(y + th) - special.gammaln(th)
                                  - special.gammaln(y + 1) + th * np.log(th / (th + mu))
                                  + special.xlogy(y, mu / (th + mu)))

    def kernel(self, y, mu, wt=None):
        y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
        return _weights(y, wt) * (y * np.log(mu) - (y + self.theta) * np.log(self.theta + mu))

    def mustart(self, y, wt=None):
        y = np.asarray(y, dtype=float)
        return y + (y == 0) / 6.0

    def validate(self, y, weights=None, name="response"):
        super().validate(y, weights, name)
        _check_counts(np.asarray(y, dtype=float), "negative binomial", name)

    def __repr__(self) -> str:
        return f"NegativeBinomial(theta={self.theta:.6g}, link='{self.link.name}')"

    def sample(self, mu, wt, rng, dispersion=1.0):
        mu = np.asarray(mu, dtype=float)
        return rng.negative_binomial(self.theta, self.theta / (self.theta + mu)).astype(float)
