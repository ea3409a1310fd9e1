"""Compiled one-pass kernels behind some links' and families' methods.

PIRLS evaluates the inverse link, its derivative and the log-likelihood kernel on every row
several times per deviance evaluation; as separate NumPy expressions these were about 40% of
a VerbAgg fit. Each kernel here computes what one class method returns in a single pass,
sharing the transcendental function between the mean and its derivative (one ``exp`` for
the logit, log and cloglog links) and skipping the logarithm a 0/1 or zero response does
not need. The classes in :mod:`.links` and :mod:`.family` call them; the solvers never do.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = float(np.finfo(float).eps)
LOGIT_CLAMP = -math.log(EPS)  # |eta| beyond which expit is 0 or 1 in double precision
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True)
def logit_inverse(eta, mu, d):  # pragma: no cover - compiled
    """mu = expit(eta) (|eta| clamped at -log(eps)) and d mu / d eta (at least eps)."""
    for i in range(eta.shape[0]):
        x = min(max(eta[i], -LOGIT_CLAMP), LOGIT_CLAMP)
        e = math.exp(-abs(x))
        r = 1.0 / (1.0 + e)
        mu[i] = r if x >= 0 else e * r
        d[i] = max(e * r * r, EPS)


@njit(cache=True)
def probit_inverse(eta, mu, d, clamp):  # pragma: no cover - compiled
    """mu = Phi(eta) (|eta| clamped) and phi(eta) (at least eps)."""
    for i in range(eta.shape[0]):
        x = min(max(eta[i], -clamp), clamp)
        mu[i] = 0.5 * math.erfc(-x / _SQRT2)
        d[i] = max(math.exp(-0.5 * eta[i] * eta[i]) * _INV_SQRT_2PI, EPS)


@njit(cache=True)
def cloglog_inverse(eta, mu, d):  # pragma: no cover - compiled
    """mu = 1 - exp(-exp(eta)) within [eps, 1 - eps] and exp(eta - exp(eta))."""
    for i in range(eta.shape[0]):
        x = min(eta[i], 700.0)
        ex = math.exp(x)
        mu[i] = min(max(-math.expm1(-ex), EPS), 1.0 - EPS)
        d[i] = max(math.exp(x - ex), EPS)


@njit(cache=True)
def log_inverse(eta, mu, d):  # pragma: no cover - compiled
    """mu = d mu / d eta = exp(eta) (at least eps)."""
    for i in range(eta.shape[0]):
        v = max(math.exp(eta[i]), EPS)
        mu[i] = v
        d[i] = v


@njit(cache=True)
def binomial_kernel(y, mu, wt):  # pragma: no cover - compiled
    """sum of wt (y log mu + (1 - y) log(1 - mu)), skipping the term a 0 or 1 drops."""
    s = 0.0
    for i in range(y.shape[0]):
        yi = y[i]
        if yi == 1.0:
            v = math.log(mu[i])
        elif yi == 0.0:
            v = math.log1p(-mu[i])
        else:
            v = yi * math.log(mu[i]) + (1.0 - yi) * math.log1p(-mu[i])
        s += wt[i] * v
    return s


@njit(cache=True)
def poisson_kernel(y, mu, wt):  # pragma: no cover - compiled
    """sum of wt (y log mu - mu), skipping the logarithm where y = 0."""
    s = 0.0
    for i in range(y.shape[0]):
        yi = y[i]
        v = -mu[i] if yi == 0.0 else yi * math.log(mu[i]) - mu[i]
        s += wt[i] * v
    return s
