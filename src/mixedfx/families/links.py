"""Link functions g(mu) = eta of generalized linear (mixed) models.

Each link is a small stateless class with ``linkfun`` (g), ``linkinv`` (g^-1), ``mu_eta``
(d mu / d eta) and ``valid_eta``. As R's ``make.link``, the inverse links of bounded means
keep mu strictly inside its range and ``mu_eta`` at least machine epsilon, so that IRLS
weights stay positive and finite.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import kernels

EPS = float(np.finfo(float).eps)
_LOGIT_CLAMP = -np.log(EPS)  # |eta| beyond which expit is 0 or 1 in double precision
_PROBIT_CLAMP = -float(special.ndtri(EPS))


def _fused(kernel, eta, *extra) -> tuple[np.ndarray, np.ndarray]:
    eta = np.ascontiguousarray(eta, dtype=float).reshape(-1)
    mu, d = np.empty_like(eta), np.empty_like(eta)
    kernel(eta, mu, d, *extra)
    return mu, d


class Link:
    """Base class of links; subclasses define ``name`` and the four methods."""

    name: str = ""

    def linkfun(self, mu: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def linkinv(self, eta: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(linkinv(eta), mu_eta(eta))`` together (one pass where a kernel shares the
        work between them)."""
        return self.linkinv(eta), self.mu_eta(eta)

    def valid_eta(self, eta: np.ndarray) -> bool:
        """Whether every linear predictor maps to a mean (all finite by default)."""
        return bool(np.all(np.isfinite(eta)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Logit(Link):
    """log(mu / (1 - mu)), the binomial's canonical link."""

    name = "logit"

    def linkfun(self, mu):
        return special.logit(np.asarray(mu, dtype=float))

    def linkinv(self, eta):
        eta = np.clip(np.asarray(eta, dtype=float), -_LOGIT_CLAMP, _LOGIT_CLAMP)
        return special.expit(eta)

    def mu_eta(self, eta):
        e = np.exp(-np.abs(np.asarray(eta, dtype=float)))
        return np.maximum(e / (1 + e) ** 2, EPS)

    def inverse(self, eta):
        return _fused(kernels.logit_inverse, eta)


class Probit(Link):
    """Phi^-1(mu), the standard normal quantile."""

    name = "probit"

    def linkfun(self, mu):
        return special.ndtri(np.asarray(mu, dtype=float))

    def linkinv(self, eta):
        eta = np.clip(np.asarray(eta, dtype=float), -_PROBIT_CLAMP, _PROBIT_CLAMP)
        return special.ndtr(eta)

    def mu_eta(self, eta):
        eta = np.asarray(eta, dtype=float)
        return np.maximum(np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi), EPS)

    def inverse(self, eta):
        return _fused(kernels.probit_inverse, eta, _PROBIT_CLAMP)


class Cloglog(Link):
    """log(-log(1 - mu)), complementary log-log."""

    name = "cloglog"

    def linkfun(self, mu):
        return np.log(-np.log1p(-np.asarray(mu, dtype=float)))

    def linkinv(self, eta):
        eta = np.minimum(np.asarray(eta, dtype=float), 700.0)
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1 - EPS)

    def mu_eta(self, eta):
        eta = np.minimum(np.asarray(eta, dtype=float), 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), EPS)

    def inverse(self, eta):
        return _fused(kernels.cloglog_inverse, eta)


class Log(Link):
    """log(mu), the Poisson's canonical link."""

    name = "log"

    def linkfun(self, mu):
        return np.log(np.asarray(mu, dtype=float))

    def linkinv(self, eta):
        return np.maximum(np.exp(np.asarray(eta, dtype=float)), EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.asarray(eta, dtype=float)), EPS)

    def inverse(self, eta):
        return _fused(kernels.log_inverse, eta)


class Inverse(Link):
    """1 / mu, the Gamma's canonical link."""

    name = "inverse"

    def linkfun(self, mu):
        return 1.0 / np.asarray(mu, dtype=float)

    def linkinv(self, eta):
        return 1.0 / np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return -1.0 / np.asarray(eta, dtype=float) ** 2

    def valid_eta(self, eta):
        eta = np.asarray(eta, dtype=float)
        return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))


class Identity(Link):
    """mu itself."""

    name = "identity"

    def linkfun(self, mu):
        return np.array(mu, dtype=float)

    def linkinv(self, eta):
        return np.array(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))


class InverseSquared(Link):
    """1 / mu^2, the inverse Gaussian's canonical link (R's ``"1/mu^2"``)."""

    name = "1/mu^2"

    def linkfun(self, mu):
        return 1.0 / np.asarray(mu, dtype=float) ** 2

    def linkinv(self, eta):
        return 1.0 / np.sqrt(np.asarray(eta, dtype=float))

    def mu_eta(self, eta):
        return -1.0 / (2 * np.asarray(eta, dtype=float) ** 1.5)

    def valid_eta(self, eta):
        eta = np.asarray(eta, dtype=float)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


LINKS: dict[str, type[Link]] = {
    "logit": Logit, "probit": Probit, "cloglog": Cloglog, "log": Log, "inverse": Inverse,
    "identity": Identity, "1/mu^2": InverseSquared,
}
_ALIASES = {"inverse_squared": "1/mu^2", "inverse-squared": "1/mu^2",
            "inversesquared": "1/mu^2"}


def get_link(link: str | Link) -> Link:
    """A link object from its name (``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``,
    ``"inverse"``, ``"identity"``, ``"1/mu^2"`` alias ``"inverse_squared"``) or a Link."""
    if isinstance(link, Link):
        return link
    if not isinstance(link, str):
        raise TypeError(f"link must be a name or a Link object, not {type(link).__name__}")
    key = _ALIASES.get(link.lower(), link.lower() if link.lower() in LINKS else link)
    if key not in LINKS:
        raise ValueError(f"unknown link '{link}'; valid links: {', '.join(LINKS)}")
    return LINKS[key]()
