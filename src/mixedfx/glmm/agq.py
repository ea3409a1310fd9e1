"""Adaptive Gauss-Hermite quadrature (AGQ) for GLMMs with one grouping factor.

With one grouping factor the likelihood factors over its levels j:

    L_j = integral p(y_j | u) phi_q(u) du,     u in R^q (q random effects per level).

Around the conditional mode u_j (from PIRLS) with the Laplace curvature
M_j = Lambda'Z_j'W_j Z_j Lambda + I = R_j R_j' (R_j lower triangular), substitute
u = u_j + R_j^-T z: then

    -2 log L_j = log det M_j - 2 log sum_k w_k exp(log p(y_j | u_k) - |u_k|^2 / 2 + |z_k|^2 / 2)

with z_k, w_k the tensor-product Gauss-Hermite rule for the standard normal in q dimensions
(K^q points for K per dimension). One point (z = 0, w = 1) gives the Laplace approximation
exactly, so ``n_agq=1`` equals ``method="laplace"``. The log-likelihood keeps every normalizing
constant (log p(y | u) is the family's full log-likelihood), unlike lme4's nAGQ > 1 values,
which drop the saturated model's log-likelihood. lme4 allows only scalar random effects;
vector ones (``(1 + x | g)``) work here the same way, with K^q points per level.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from .laplace import LaplaceFit, fit_laplace
from .model import GlmmModel
from .pirls import PirlsEngine, PirlsState

MAX_POINTS = 10_000  # K^q per level


def gauss_hermite(k: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for the q-dimensional standard normal.

    Returns
    -------
    nodes : numpy.ndarray
        (k^q, q) points.
    log_weights : numpy.ndarray
        (k^q,) log weights (the weights sum to 1).
    """
    x, w = hermegauss(k)
    w = w / np.sqrt(2 * np.pi)
    nodes = np.array(list(itertools.product(x, repeat=q)), dtype=float).reshape(-1, q)
    logw = np.array([np.sum(np.log(c)) for c in itertools.product(w, repeat=q)])
    return nodes, logw


def check_structure(model: GlmmModel, n_agq: int) -> None:
    """Raise ValueError unless the model has one random term with one grouping factor and a
    family with fixed dispersion, and the rule is not too large."""
    if len(model.terms) != 1:
        groups = ", ".join(f"({' + '.join(c.replace('(Intercept)', '1') for c in t.columns)} "
                           f"| {t.group})" for t in model.terms)
        raise ValueError(f"method='agq' supports one random-effects term with one grouping "
                         f"factor, such as (1 | g) or (1 + x | g); this model has "
                         f"{len(model.terms)}: {groups}. Use method='laplace' for it")
    if not model.family.fixed_dispersion:
        raise ValueError(f"method='agq' supports families with fixed dispersion (binomial, "
                         f"Poisson, negative binomial at fixed theta), not {model.family.name}; "
                         "use method='laplace'")
    q = model.terms[0].dim
    if n_agq**q > MAX_POINTS:
        raise ValueError(f"n_agq={n_agq} with {q} random effects per level needs {n_agq}^{q} = "
                         f"{n_agq**q} points per level (at most {MAX_POINTS}); use fewer points")


class AgqEngine(PirlsEngine):
    """PIRLS engine whose deviance is the adaptive Gauss-Hermite approximation.

    Parameters
    ----------
    model : GlmmModel
        One random term (checked by :func:`check_structure`).
    n_agq : int
        Points per dimension.
    """

    def __init__(self, model: GlmmModel, n_agq: int) -> None:
        super().__init__(model, free_beta=False)
        self.n_agq = n_agq
        term = self.terms[0]
        self.nodes, self.logw = gauss_hermite(n_agq, term.dim)
        fam, y, a = model.family, model.y, model.prior
        sat = fam.loglik(y, np.asarray(y, float), a)  # log p(y | mu = y) per row
        self.sat_level = np.bincount(term.codes, sat, minlength=term.nlevels)

    def laplace(self, state: PirlsState) -> float:
        """-2 log L by adaptive Gauss-Hermite quadrature at the state's theta and beta."""
        return self.agq_deviance(state)

    def agq_deviance(self, state: PirlsState, per_level: bool = False):
        m, fam, term = self.model, self.model.family, self.terms[0]
        T = self.factors(state.theta)[0]
        q, nl = term.dim, term.nlevels
        A11 = self.cross.blocks.A11  # Z_j'W Z_j at the modes' weights (last factorization)
        M = np.einsum("ca,jcd,db->jab", T, A11, T) + np.eye(q)
        R = np.linalg.cholesky(M)  # M_j = R_j R_j'
        logdet = 2 * np.sum(np.log(np.einsum("jaa->ja", R)), axis=1)
        Rt_inv = np.linalg.inv(np.transpose(R, (0, 2, 1)))  # R_j^-T
        u_hat = state.u[0]
        fixed = state.eta - self.random_part([T], state.u)
        codes = term.codes
        K = len(self.logw)
        terms = np.empty((K, nl))
        for k in range(K):
            u = u_hat + Rt_inv @ self.nodes[k]
            b = u @ T.T
            eta = fixed + np.einsum("ij,ij->i", term.Z, b[codes]) if q > 1 else \
                fixed + term.Z[:, 0] * b[codes, 0]
            dev = fam.dev_resids(m.y, fam.linkinv(eta), m.prior)
            loglik = -0.5 * np.bincount(codes, dev, minlength=nl) + self.sat_level
            terms[k] = (self.logw[k] + loglik - 0.5 * np.sum(u * u, axis=1)
                        + 0.5 * self.nodes[k] @ self.nodes[k])
        level = logdet - 2 * logsumexp(terms, axis=0)
        return level if per_level else float(np.sum(level))


def fit_agq(model: GlmmModel, *, n_agq: int, control: dict | None = None,
            theta0: np.ndarray | None = None, beta0: np.ndarray | None = None) -> LaplaceFit:
    """Fit by adaptive Gauss-Hermite quadrature with ``n_agq`` points per random effect:
    the nAGQ = 0 start, then the quadrature deviance over (theta, beta), as lme4."""
    check_structure(model, n_agq)
    return fit_laplace(model, n_agq=1, control=control, theta0=theta0, beta0=beta0,
                       engine_factory=lambda mod: AgqEngine(mod, n_agq))
