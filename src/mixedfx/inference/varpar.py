"""The LMM deviance as a function of all variance parameters, and numerical derivatives.

lmerTest's Satterthwaite method works in the parameterization varpar = (theta, sigma): the
deviance (REML criterion or ML deviance, *not* profiled over sigma) and the covariance of
the fixed effects, sigma^2 (R_X'R_X)^{-1}, are both functions of varpar, and their
derivatives at the estimates give the asymptotic covariance of varpar (twice the inverse
Hessian of the deviance) and the gradient of any contrast's variance.

Everything comes from the engine's factorization at theta (no full solve), so one
evaluation costs one objective evaluation. :func:`varpar_derivatives` differentiates only
in theta numerically (the sigma derivatives are analytic); the generic :func:`hessian`
and :func:`jacobian` in (theta, sigma) serve as its independent check. Derivatives are
central differences refined by Richardson extrapolation over four step halvings, as
numDeriv does, but from a relative step of 1e-2 rather than numDeriv's 1e-4: the deviance
carries rounding noise of about 1e-13 relative (it is computed from cross-product
blocks), which second differences at numDeriv's smallest step (1.25e-5) amplify to errors
of 0.2% in the df (sleepstudy: 16.97 instead of 17), while after extrapolation the
truncation error of the larger steps is negligible (df within 6e-6 of the exact 17).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import DataError
from ..linalg.solution import lower_inverse

STEP = 1e-2  # relative step (numDeriv's d is 1e-4: too small for our rounding noise)
ZERO_STEP = 1e-2  # absolute step for parameters at zero
LEVELS = 4  # Richardson levels (numDeriv's r)


class VarparFunctions:
    """Deviance and covariance of beta of a fitted LMM as functions of (theta, sigma).

    Parameters
    ----------
    model : LmmModel
        The model a result was fitted from (``res.model``).
    """

    def __init__(self, model) -> None:
        if model is None:
            raise DataError("denominator df re-evaluate the likelihood, and this result holds "
                            "no model (loaded from a file?): refit it, or use "
                            "ddf='asymptotic'")
        if not hasattr(model, "factorizer") or hasattr(model, "structures"):
            raise DataError("Satterthwaite df need an LMM with sigma^2 I residuals (got "
                            f"{type(model).__name__}); residual-structure fits (correlation=, "
                            "variance=) support ddf='asymptotic' only")
        self.model = model
        blocks = model.blocks
        self.n, self.p, self.mr = blocks.n, blocks.p, blocks.m_random

    def _factor(self, theta: np.ndarray):
        f = self.model.factorizer.factor(self.model.tmap.to_engine(np.asarray(theta, float)))
        if not f.ok:
            raise DataError("the penalized system is not positive definite at a perturbed "
                            "theta; the fit may be at a boundary where derivatives fail")
        return f

    def _parts(self, theta: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """(log|L|^2, log|R_X|^2, pwrss, R_X lower factor) at theta."""
        f = self._factor(theta)
        diag = np.diagonal(f.L)
        mr, p = self.mr, self.p
        logdet_L = f.logdet_first + 2 * float(np.sum(np.log(diag[:mr])))
        logdet_RX = 2 * float(np.sum(np.log(diag[mr:mr + p])))
        return logdet_L, logdet_RX, float(diag[-1] ** 2), f.L[mr:mr + p, mr:mr + p]

    def point(self, theta: np.ndarray, with_vcov: bool = True
              ) -> tuple[float, float, np.ndarray | None]:
        """(the deviance's log-determinant part, pwrss, (R_X'R_X)^{-1} or None) at theta;
        the deviance at (theta, sigma) is ``part + pwrss / sigma^2 + n_eff log(2 pi
        sigma^2)``."""
        ldL, ldRX, pwrss, LX = self._parts(theta)
        part = ldL + (ldRX if self.model.reml else 0.0)
        if not with_vcov:
            return part, pwrss, None
        inv = lower_inverse(LX)
        return part, pwrss, inv.T @ inv

    @property
    def n_eff(self) -> int:
        """n (ML) or n - p (REML): the multiplier of log(2 pi sigma^2) in the deviance."""
        return self.n - (self.p if self.model.reml else 0)

    def deviance(self, varpar: np.ndarray) -> float:
        """-2 log-likelihood (ML) or -2 restricted log-likelihood (REML) at (theta, sigma),
        without the prior weights' constant (it does not depend on varpar)."""
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        ldL, ldRX, pwrss, _ = self._parts(theta)
        dev = ldL + pwrss / sigma2 + self.n * math.log(2 * math.pi * sigma2)
        if self.model.reml:
            dev += ldRX - self.p * math.log(2 * math.pi * sigma2)
        return dev

    def unscaled_vcov(self, theta: np.ndarray) -> np.ndarray:
        """(R_X'R_X)^{-1} at theta: vcov(beta) / sigma^2."""
        *_, LX = self._parts(theta)
        inv = lower_inverse(LX)
        return inv.T @ inv

    def vcov_beta(self, varpar: np.ndarray) -> np.ndarray:
        """sigma^2 (R_X'R_X)^{-1} at (theta, sigma)."""
        return varpar[-1] ** 2 * self.unscaled_vcov(varpar[:-1])


def _steps(x: float) -> float:
    return STEP * abs(x) + (ZERO_STEP if abs(x) < 1e-8 else 0.0)


def _richardson(values: list) -> object:
    """Extrapolate central differences at steps h, h/2, h/4, ... (error O(h^2))."""
    table = list(values)
    for j in range(1, len(table)):
        factor = 4.0**j
        table = [(factor * table[k + 1] - table[k]) / (factor - 1)
                 for k in range(len(table) - 1)]
    return table[0]


def jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """d fun / d x_i for each i (fun array-valued), by Richardson-extrapolated central
    differences."""
    x = np.asarray(x, float)
    out = []
    for i in range(len(x)):
        h0 = _steps(x[i])
        diffs = []
        for k in range(LEVELS):
            h = h0 / 2**k
            e = np.zeros_like(x)
            e[i] = h
            diffs.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
        out.append(_richardson(diffs))
    return out


def hessian(fun: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Hessian of a scalar function by Richardson-extrapolated central differences."""
    x = np.asarray(x, float)
    k = len(x)
    f0 = fun(x)
    H = np.empty((k, k))
    h0 = np.array([_steps(v) for v in x])
    for i in range(k):
        diffs = []
        for lev in range(LEVELS):
            h = h0[i] / 2**lev
            e = np.zeros(k)
            e[i] = h
            diffs.append((fun(x + e) - 2 * f0 + fun(x - e)) / h**2)
        H[i, i] = _richardson(diffs)
        for j in range(i):
            diffs = []
            for lev in range(LEVELS):
                hi, hj = h0[i] / 2**lev, h0[j] / 2**lev
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = hi, hj
                diffs.append((fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej)
                              + fun(x - ei - ej)) / (4 * hi * hj))
            H[i, j] = H[j, i] = _richardson(diffs)
    return H


def varpar_derivatives(fun: VarparFunctions, theta: np.ndarray, sigma: float
                       ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Hessian of the deviance in varpar = (theta, sigma), d vcov(beta) / d varpar_k, and
    vcov(beta), at (theta, sigma).

    Only theta needs numerical derivatives: the deviance is ``a(theta) + pwrss(theta) /
    sigma^2 + n_eff log(2 pi sigma^2)`` and vcov(beta) = sigma^2 U(theta), so every
    derivative in sigma is analytic given a, pwrss, U and their theta derivatives. One
    factorization per point serves the Hessian's diagonal, the gradient of pwrss and the
    Jacobian of U; mixed second derivatives reuse those points, with two more per pair:
    ``(f(x+hi+hj) + f(x-hi-hj) - f(x+hi) - f(x-hi) - f(x+hj) - f(x-hj) + 2 f(x)) / (2 hi
    hj)``, which has the same even error expansion, so Richardson applies as on the
    diagonal. sleepstudy: 48 factorizations instead of 160 for the generic Hessian and
    Jacobian in (theta, sigma).
    """
    theta = np.asarray(theta, float)
    k = len(theta)
    s2 = sigma * sigma
    part0, pw0, U0 = fun.point(theta)
    c0 = part0 + pw0 / s2
    h0 = np.array([_steps(v) for v in theta])
    Hc, gpw, jU = np.empty((k, k)), np.empty(k), []
    side: dict[tuple[int, int], float] = {}
    for i in range(k):
        d2, d1, dU = [], [], []
        for lev in range(LEVELS):
            e = np.zeros(k)
            e[i] = h = h0[i] / 2**lev
            ap, pwp, Up = fun.point(theta + e)
            am, pwm, Um = fun.point(theta - e)
            side[i, lev] = (ap + pwp / s2) + (am + pwm / s2)
            d2.append((side[i, lev] - 2 * c0) / h**2)
            d1.append((pwp - pwm) / (2 * h))
            dU.append((Up - Um) / (2 * h))
        Hc[i, i], gpw[i] = _richardson(d2), _richardson(d1)
        jU.append(_richardson(dU))
    for i in range(k):
        for j in range(i):
            diffs = []
            for lev in range(LEVELS):
                e = np.zeros(k)
                hi, hj = h0[i] / 2**lev, h0[j] / 2**lev
                e[i], e[j] = hi, hj
                ap, pwp, _ = fun.point(theta + e, with_vcov=False)
                am, pwm, _ = fun.point(theta - e, with_vcov=False)
                both = (ap + pwp / s2) + (am + pwm / s2)
                diffs.append((both - side[i, lev] - side[j, lev] + 2 * c0) / (2 * hi * hj))
            Hc[i, j] = Hc[j, i] = _richardson(diffs)
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = Hc
    H[:k, k] = H[k, :k] = -2 * gpw / sigma**3
    H[k, k] = 6 * pw0 / sigma**4 - 2 * fun.n_eff / s2
    jac = [s2 * J for J in jU] + [2 * sigma * U0]
    return H, jac, s2 * U0
