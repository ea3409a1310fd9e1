"""Confidence intervals of a GLMM fitted by the Laplace approximation: Wald or profile.

Rows as lme4's ``confint(fit, oldNames = FALSE)``: the random-effect standard deviations and
correlations (``sd_(Intercept)|herd``, ``cor_x.(Intercept)|g``, ...; the link scale, no
``sigma`` for families whose dispersion is fixed), then the fixed effects.

The profile interval of a parameter phi_w is where the signed root of the profiled deviance,

    zeta(v) = sign(v - phi_hat) sqrt(min over the other parameters of D(phi_w = v) - D_hat),

equals -+ z_{(1 + level)/2}, D being the Laplace deviance (-2 log L) of the fit. lme4 samples
zeta on a grid and interpolates it with a spline; here each end is found by a secant search
on zeta itself (nearly linear in the parameter), each point a BOBYQA minimization over the
other parameters in units of their standard errors, so an end takes 3-5 profiled points.
An end at a bound (a standard deviation of 0, a correlation of +-1) is that bound when the
profiled deviance there stays below the cutoff.
"""

from __future__ import annotations

import nlopt
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MixedFXError
from ..inference.parameters import SdCorScale
from .laplace import theta_scale
from .pirls import PirlsEngine, PirlsError

METHODS = ("profile", "wald", "bootstrap")
ZETA_TOL = 1e-4  # |zeta - target| at which an end is accepted
MAX_POINTS = 25  # profiled points per end before giving up (NaN)
XTOL = 1e-5  # BOBYQA step tolerance, in standard errors of the other parameters


def _variance_names(res) -> list[str]:
    return SdCorScale(res.model.terms).names[:-1]


def wald(res, level: float) -> pd.DataFrame:
    """Estimate -+ z se for the fixed effects; NaN for the variance parameters (as lme4)."""
    z = stats.norm.ppf((1 + level) / 2)
    names = _variance_names(res)
    est, se = res.fixef.to_numpy(), res.se.to_numpy()
    nan = np.full(len(names), np.nan)
    return pd.DataFrame({"lower": np.concatenate([nan, est - z * se]),
                         "upper": np.concatenate([nan, est + z * se])},
                        index=pd.Index(names + list(res.fixef.index), dtype=object))


class _Profiler:
    """The Laplace deviance on lme4's (sd, cor, beta) scale, profiled one parameter at a
    time."""

    def __init__(self, res) -> None:
        model = res.model
        self.model = model
        self.engine = PirlsEngine(model, free_beta=False)
        self.scale = SdCorScale(model.terms)
        self.k = self.scale.size - 1  # variance parameters (no sigma)
        self.p = len(res.fixef)
        self.hat = np.concatenate([self.scale.from_theta(np.asarray(res.theta), 1.0)[:-1],
                                   res.fixef.to_numpy()])
        self.lower = np.concatenate([self.scale.lower[:-1], np.full(self.p, -np.inf)])
        self.upper = np.concatenate([self.scale.upper[:-1], np.full(self.p, np.inf)])
        var_step = np.where(self.scale.lower[:-1] < 0, 0.1,  # correlations
                            theta_scale(model, self.hat[: self.k]) if self.k else 0.0)
        self.step = np.concatenate([np.atleast_1d(var_step), res.se.to_numpy()])
        self.vcov = res.vcov.to_numpy()
        self.u = None
        self.evaluations = 0
        self.dev_hat = self.deviance(self.hat)
        if not np.isfinite(self.dev_hat):
            raise MixedFXError("the Laplace deviance cannot be evaluated at the estimates")

    def deviance(self, phi: np.ndarray) -> float:
        theta = self.scale.to_theta(np.append(phi[: self.k], 1.0))
        if theta is None:
            return np.inf
        self.evaluations += 1
        try:
            st = self.engine.run(self.model.tmap.to_engine(theta), phi[self.k :], self.u)
        except PirlsError:
            self.u = None
            return np.inf
        self.u = st.u
        return self.engine.laplace(st)

    def start(self, w: int, v: float) -> np.ndarray:
        """The other parameters' start at phi_w = v: for a fixed effect, the others moved by
        their regression on it under the fit's covariance; the estimates otherwise."""
        phi = self.hat.copy()
        j = w - self.k
        if j >= 0 and self.vcov[j, j] > 0:
            phi[self.k :] += self.vcov[:, j] / self.vcov[j, j] * (v - self.hat[w])
        phi[w] = v
        return np.clip(phi, self.lower, self.upper)

    def profiled(self, w: int, v: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over the other parameters of the deviance at phi_w = v (from ``start``)."""
        free = np.flatnonzero(np.arange(len(self.hat)) != w)
        base = start.copy()
        base[w] = v
        if free.size == 0:
            return self.deviance(base), base
        step = self.step[free]
        origin = base[free]

        def point(x: np.ndarray) -> np.ndarray:
            phi = base.copy()
            phi[free] = origin + step * x
            return phi

        best = {"f": np.inf, "x": np.zeros(free.size)}

        def objective(x, grad):
            f = self.deviance(point(x))
            if f < best["f"]:
                best["f"], best["x"] = f, x.copy()
            return f if np.isfinite(f) else 1e300

        with np.errstate(invalid="ignore"):
            lo = np.where(np.isfinite(self.lower[free]), (self.lower[free] - origin) / step,
                          -np.inf)
            hi = np.where(np.isfinite(self.upper[free]), (self.upper[free] - origin) / step,
                          np.inf)
        opt = nlopt.opt(nlopt.LN_BOBYQA, free.size)
        opt.set_min_objective(objective)
        opt.set_lower_bounds(lo)
        opt.set_upper_bounds(hi)
        opt.set_initial_step(0.25)
        opt.set_xtol_abs(XTOL)
        opt.set_maxeval(2000)
        try:
            opt.optimize(np.clip(np.zeros(free.size), lo, hi))
        except (nlopt.RoundoffLimited, ValueError, RuntimeError):
            pass  # keep the best point seen
        return best["f"], point(best["x"])

    def zeta(self, w: int, v: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        dev, phi = self.profiled(w, v, start)
        if not np.isfinite(dev):
            return np.nan, phi
        return float(np.sign(v - self.hat[w]) * np.sqrt(max(dev - self.dev_hat, 0.0))), phi

    def end(self, w: int, target: float) -> float:
        """The value of phi_w where zeta = target (a bound when zeta stays short of it)."""
        side = np.sign(target)
        bound = self.lower[w] if side < 0 else self.upper[w]
        est = self.hat[w]
        v_prev, z_prev = est, 0.0
        v = est + target * self.step[w]
        last = None  # (value, optimum) of the last profiled point
        for _ in range(MAX_POINTS):
            at_bound = np.isfinite(bound) and side * (v - bound) >= 0
            if at_bound:
                v = bound
            # start from the last optimum, shifted as the regression start moves
            start = self.start(w, v) if last is None else np.clip(
                last[1] + self.start(w, v) - self.start(w, last[0]), self.lower, self.upper)
            z, phi = self.zeta(w, v, start)
            if np.isnan(z):  # outside where the deviance is defined: step back halfway
                v = (v + v_prev) / 2
                continue
            last = (v, phi)
            if abs(z - target) < ZETA_TOL:
                return v
            if at_bound and side * (z - target) < 0:
                return bound  # the profile stays within the cutoff up to the bound
            if side * (z - z_prev) <= 0:  # not increasing: widen
                v_next = est + 2 * (v - est)
            else:
                v_next = v + (target - z) * (v - v_prev) / (z - z_prev)
            v_prev, z_prev = v, z
            v = v_next
        return np.nan


def profile_confint(res, level: float = 0.95, which=None) -> pd.DataFrame:
    """Profile-likelihood intervals (see the module docstring)."""
    if not res.family_object.fixed_dispersion:
        raise MixedFXError(f"profile intervals need a family with a fixed dispersion (not "
                           f"{res.family}); use method='wald'")
    if res.method not in ("laplace",) or res.n_agq != 1:
        raise MixedFXError("profile intervals are implemented for Laplace fits (method="
                           "'laplace', n_agq=1); use method='wald'")
    prof = _Profiler(res)
    names = _variance_names(res) + list(res.fixef.index)
    wanted = _select(which, names, prof.k)
    z = stats.norm.ppf((1 + level) / 2)
    lower = np.full(len(names), np.nan)
    upper = np.full(len(names), np.nan)
    for w in wanted:
        lower[w] = prof.end(w, -z)
        upper[w] = prof.end(w, z)
    out = pd.DataFrame({"lower": lower, "upper": upper},
                       index=pd.Index(names, dtype=object))
    return out.iloc[wanted]


def _select(which, names: list[str], k: int) -> list[int]:
    if which is None:
        return list(range(len(names)))
    if isinstance(which, str):
        if which == "theta_":
            return list(range(k))
        if which == "beta_":
            return list(range(k, len(names)))
        which = [which]
    unknown = [w for w in which if w not in names]
    if unknown:
        raise MixedFXError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                           f"available: {', '.join(names)}")
    return [names.index(w) for w in which]


def confint(res, method: str = "profile", level: float = 0.95, which=None, *,
            nsim: int = 500, seed: int | None = None, n_jobs: int = 1,
            progress: bool | None = None) -> pd.DataFrame:
    """Confidence intervals of a GLMM's parameters.

    Parameters
    ----------
    res : GlmmResult
    method : {"profile", "wald", "bootstrap"}
        ``"profile"`` (default, as lme4's ``confint``): invert the profiled Laplace deviance
        (Laplace fits of fixed-dispersion families). ``"wald"``: estimate -+ z se for the
        fixed effects, NaN for the variance parameters. ``"bootstrap"``: percentile
        intervals of a parametric bootstrap (:func:`mixedfx.glmm.simulate.bootstrap`).
    level : float, default 0.95
    which : list of str or {"theta_", "beta_"}, optional
        Parameters to profile (all by default).
    nsim, seed, n_jobs, progress
        Bootstrap settings (``method="bootstrap"`` only).

    Returns
    -------
    pandas.DataFrame
        Columns ``lower`` and ``upper``; rows ``sd_...``/``cor_...`` then the fixed effects.
    """
    if not 0 < level < 1:
        raise MixedFXError(f"level must be between 0 and 1, got {level}")
    if getattr(res, "model", None) is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again")
    method = method.lower()
    if method == "wald":
        out = wald(res, level)
        return out if which is None else out.iloc[_select(which, list(out.index),
                                                          len(_variance_names(res)))]
    if method == "profile":
        return profile_confint(res, level, which)
    if method in ("bootstrap", "boot"):
        from .simulate import bootstrap

        out = bootstrap(res, nsim, seed=seed, n_jobs=n_jobs, progress=progress).confint(level)
        return out if which is None else out.iloc[_select(which, list(out.index),
                                                          len(_variance_names(res)))]
    raise MixedFXError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")
