"""Likelihood profiles of a linear mixed model and the intervals they give (lme4's profile).

For each parameter psi the profile is the signed square root of the deviance increase,

    zeta(psi) = sign(psi - psi_hat) sqrt(d(psi) - d(psi_hat)),

where d(psi) is the ML deviance minimized over every other parameter with psi held fixed.
As lme4, the profile is always of the maximum likelihood deviance: a REML fit is refitted by
ML first (its intervals are those of the ML refit, as lme4's ``confint(method="profile")``).

* Variance parameters (lme4's ``sd_``, ``cor_`` and ``sigma``): the ML deviance with sigma
  not profiled out, d = log|L|^2 + n log(2 pi sigma^2) + r(theta) / sigma^2 - sum(log w),
  where theta = chol(correlations) * sd / sigma; one parameter is fixed and the others
  re-optimized by BOBYQA within their bounds (sd >= 0, -1 <= cor <= 1, sigma > 0).
* Fixed effects: at a fixed theta the penalized residual sum of squares is a quadratic in
  beta, r(theta, beta) = r_min(theta) + (beta - beta_hat)' R_X'R_X (beta - beta_hat), so with
  beta_j = b fixed and the other coefficients and sigma profiled out,
  d = log|L|^2 + n (1 + log(2 pi r_j / n)) with r_j = r_min + (b - beta_hat_j)^2 / V_jj and
  V = (R_X'R_X)^-1; only theta is optimized (the same model as lme4's offset refits, without
  rebuilding the design).

The points of each trace follow lme4's stepping rule (steps of about ``delta`` in zeta,
extrapolated from the last two points) until |zeta| passes sqrt(qchisq(0.99, npar)), and the
intervals invert a natural interpolating spline of zeta by its Hermite inverse, as lme4's
``backSpline``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import nlopt
import numpy as np
import pandas as pd
from scipy import stats
from scipy.interpolate import CubicHermiteSpline, CubicSpline
from scipy.linalg import lapack

from ..errors import ConvergenceWarning, MixedFXError
from .parameters import SdCorScale

ALPHA_MAX = 0.01  # the trace extends to the simultaneous 99% region, as lme4's alphamax
DELTA_CUTOFF = 1 / 8  # step in zeta as a fraction of the cutoff (lme4's delta.cutoff)
MAX_POINTS = 100  # per side
MAX_MULT = 10  # a step is at most 10 times the previous one (lme4's maxmult)
DEV_TOL = 1e-9  # a deviance increase below this counts as zero
LOWER_TOL = 1e-6  # a profile deviance this far below the optimum means the fit was not optimal
FTOL_ABS = 1e-8  # stopping rule of each re-optimization (deviance units)
XTOL_REL = 1e-7


@dataclass(frozen=True, eq=False)
class Profile:
    """Likelihood profile traces of every parameter (lme4's ``profile`` of a fit).

    Attributes
    ----------
    traces : dict of str to pandas.DataFrame
        For each profiled parameter, the evaluated points sorted by that parameter: column
        ``zeta`` (signed square-root deviance) and the values of all parameters there.
    estimates : pandas.Series
        Maximum likelihood estimates on the profile scale (sd, cor, sigma, fixed effects).
    lower, upper : pandas.Series
        Bounds of each parameter (0 for sds and sigma, -1 and 1 for correlations).
    base_deviance : float
        ML deviance at the optimum.
    refitted : bool
        Whether the fit was REML and the profile is of its ML refit.
    notes : tuple of str
        Messages about the profile (singular fit, parameters at a bound).
    """

    traces: dict
    estimates: pd.Series
    lower: pd.Series
    upper: pd.Series
    base_deviance: float
    refitted: bool
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        kind = "ML refit of a REML fit" if self.refitted else "ML fit"
        lines = [f"<Profile of {len(self.traces)} parameters ({kind}), "
                 f"base deviance {self.base_deviance:.4f}>"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def to_dict(self) -> dict:
        """JSON-serializable form: traces as column lists, estimates, bounds, notes."""
        def clean(values) -> list:
            return [None if not np.isfinite(v) else float(v) for v in values]

        return {"traces": {k: {c: clean(df[c].to_numpy()) for c in df.columns}
                           for k, df in self.traces.items()},
                "estimates": dict(zip(self.estimates.index, clean(self.estimates), strict=True)),
                "lower": dict(zip(self.lower.index, clean(self.lower), strict=True)),
                "upper": dict(zip(self.upper.index, clean(self.upper), strict=True)),
                "base_deviance": self.base_deviance, "refitted": self.refitted,
                "notes": list(self.notes)}

    def to_frame(self) -> pd.DataFrame:
        """All traces in one long frame with a ``parameter`` column (lme4's layout)."""
        frames = [df.assign(parameter=name) for name, df in self.traces.items()]
        return pd.concat(frames, ignore_index=True)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile confidence intervals: where the zeta spline crosses -+ qnorm((1+level)/2).

        A variance parameter whose trace reaches its bound before zeta does gets the bound
        (0 for an sd at a singular fit), as lme4.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper`` indexed by parameter name.
        """
        if not 0 < level < 1:
            raise MixedFXError(f"level must be between 0 and 1, got {level}")
        z = stats.norm.ppf((1 + level) / 2)
        rows = {}
        for name, df in self.traces.items():
            x, zeta = df[name].to_numpy(), df["zeta"].to_numpy()
            lo, hi = _invert(x, zeta, name, (-z, z))
            if np.isnan(lo) and x.min() <= self.lower[name]:
                lo = self.lower[name]
            if np.isnan(hi) and x.max() >= self.upper[name]:
                hi = self.upper[name]
            rows[name] = (lo, hi)
        out = pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])
        out.index = pd.Index(list(rows), dtype=object)
        return out


def _invert(x: np.ndarray, zeta: np.ndarray, name: str, targets) -> tuple[float, float]:
    """Parameter values where the trace's zeta equals each target (NaN outside the trace)."""
    keep = np.isfinite(x) & np.isfinite(zeta)
    x, zeta = x[keep], zeta[keep]
    x, idx = np.unique(x, return_index=True)
    zeta = zeta[idx]
    out = []
    if len(x) < 2:
        return np.nan, np.nan
    forward = CubicSpline(x, zeta, bc_type="natural") if len(x) > 2 else None
    slope = forward(x, 1) if forward is not None else np.full(2, np.diff(zeta)[0] / np.diff(x)[0])
    monotone = bool(np.all(np.diff(zeta) > 0) and np.all(slope != 0))  # as backSpline
    if not monotone:
        warnings.warn(f"the profile of {name} is not monotone: its interval uses linear "
                      "interpolation", ConvergenceWarning, stacklevel=3)
        order = np.argsort(zeta)
    for t in targets:
        if not zeta.min() <= t <= zeta.max():
            out.append(np.nan)
        elif monotone:
            out.append(float(CubicHermiteSpline(zeta, x, 1 / slope)(t)))
        else:
            out.append(float(np.interp(t, zeta[order], x[order])))
    return out[0], out[1]


class _MLDeviance:
    """ML deviance pieces of an ML ``LmmModel`` at any theta (display order)."""

    def __init__(self, model) -> None:
        self.model = model
        b = model.blocks
        self.n, self.p, self.mr, self.slw = b.n, b.p, b.m_random, b.sum_log_weights
        self.work = np.empty_like(b.A22)
        self.shift = np.asarray(getattr(model, "beta_shift", np.zeros(b.p)), float)

    def factor(self, theta: np.ndarray):
        f = self.model.factorizer.factor(self.model.tmap.to_engine(theta), out=self.work)
        if not f.ok:
            return None
        diag = np.diagonal(f.L)
        if np.any(diag[: self.mr] <= 0) or not diag[-1] > 0:
            return None
        logdet = f.logdet_first + 2.0 * np.sum(np.log(diag[: self.mr]))
        return f, float(logdet), float(diag[-1] ** 2)

    def beta(self, f) -> tuple[np.ndarray, np.ndarray]:
        """beta_hat(theta) and V = (R_X'R_X)^-1 from a factor."""
        mr, p = self.mr, self.p
        if p == 0:
            return np.zeros(0), np.zeros((0, 0))
        Linv, info = lapack.dtrtri(np.tril(f.L[mr : mr + p, mr : mr + p]), lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dtrtri failed (info={info})")
        # the engine's blocks may hold y minus a least-squares fit (LmmModel.beta_shift)
        beta = Linv.T @ f.L[-1, mr : mr + p] + self.shift
        return beta, Linv.T @ Linv

    def at_sigma(self, theta: np.ndarray | None, sigma: float) -> float:
        """ML deviance at theta and a given sigma (beta profiled out)."""
        if theta is None:
            return np.inf
        parts = self.factor(theta)
        if parts is None:
            return np.inf
        _, logdet, pwrss = parts
        return logdet + self.n * np.log(2 * np.pi * sigma**2) + pwrss / sigma**2 - self.slw

    def at_beta(self, theta: np.ndarray, j: int, b: float) -> float:
        """ML deviance at theta with beta_j = b (other betas and sigma profiled out)."""
        parts = self.factor(theta)
        if parts is None:
            return np.inf
        f, logdet, pwrss = parts
        beta, V = self.beta(f)
        r = pwrss + (b - beta[j]) ** 2 / V[j, j]
        return logdet + self.n * (1 + np.log(2 * np.pi * r / self.n)) - self.slw


def _bobyqa(fun, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
            step: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimize ``fun`` within bounds from ``x0``; the best point seen and its value."""
    n = len(x0)
    best = {"f": np.inf, "x": x0.copy()}

    def objective(x, grad):
        v = float(fun(x))
        if v < best["f"]:
            best["f"], best["x"] = v, x.copy()
        return v if np.isfinite(v) else 1e300

    x0 = np.clip(x0, lower, upper)
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(objective)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_initial_step(step)
    opt.set_ftol_abs(FTOL_ABS)
    opt.set_xtol_rel(XTOL_REL)
    opt.set_maxeval(5000)
    try:
        opt.optimize(x0)
    except (nlopt.RoundoffLimited, ValueError, RuntimeError):
        pass  # keep the best point seen
    return best["x"], best["f"]


def _walk(evaluate, rows: list, lo: float, hi: float, delta: float, cutoff: float) -> list:
    """Extend a trace from its last two rows (param, zeta, ...) as lme4's ``fillmat``: the
    next parameter value aims at a zeta step of ``delta``, extrapolating linearly."""
    while len(rows) < MAX_POINTS:
        (pa, za), (pb, zb) = rows[-2][:2], rows[-1][:2]
        if not (lo < pb < hi) or not np.isfinite(zb) or abs(zb) > cutoff:
            break
        num, denom = pb - pa, zb - za
        if num == 0:  # no direction to extrapolate in
            break
        if not np.isfinite(denom) or denom == 0:
            step = 1e-6
        else:
            step = delta * num / denom
            if step < 0:
                step = 1e-6
            elif abs(step) > MAX_MULT * abs(num):
                step = MAX_MULT * abs(num)
        nxt = min(hi, max(lo, pb + np.sign(num) * abs(step)))
        # start the re-optimization from the line through the last two points
        guess = rows[-1] + (rows[-1] - rows[-2]) * ((nxt - pb) / num)
        rows.append(evaluate(nxt, [guess, rows[-1]]))
    return rows


def _ml_fit(res):
    model = getattr(res, "model", None)
    if model is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again "
                           "to profile it")
    from ..lmm import LmmModel

    if not isinstance(model, LmmModel):
        raise MixedFXError("profiles are available for models without a residual correlation "
                           "or variance structure; use res.bootstrap() for intervals of this "
                           "model")
    if not res.reml:
        return res, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.with_reml(False).fit(theta0=np.asarray(res.theta),
                                        control={"initial_step": 0.1})
    return ml, True


class _Profiler:
    """The traces of one ML fit: the deviance evaluator, the parameter scale, the estimates
    and lme4's stepping constants, with one method per kind of parameter."""

    def __init__(self, ml) -> None:
        self.ml = ml
        self.dev = _MLDeviance(ml.model)
        self.scale = SdCorScale(ml.model.terms)
        self.theta_hat = np.asarray(ml.theta, float)
        self.var_hat = self.scale.from_theta(self.theta_hat, ml.sigma)
        self.beta_names = list(ml.model.fixed_names)
        self.beta_hat = ml.fixef.to_numpy()
        self.names = self.scale.names + self.beta_names
        self.nvar, self.p = self.scale.size, len(self.beta_names)
        self.base = self.dev.at_sigma(self.theta_hat, ml.sigma)
        if not np.isclose(self.base, ml.objective, rtol=1e-8, atol=1e-8):
            raise MixedFXError(f"internal check failed: ML deviance {self.base} at the "
                               f"estimates differs from the fit's {ml.objective}")
        self.cutoff = np.sqrt(stats.chi2.ppf(1 - ALPHA_MAX, self.nvar + self.p))
        self.delta = self.cutoff * DELTA_CUTOFF
        self.base_row = np.concatenate([[0.0], self.var_hat, self.beta_hat])
        self.lowered: list[float] = []

    def _zeta(self, value: float, est: float, deviance: float) -> float:
        diff = deviance - self.base
        if diff < -LOWER_TOL:
            self.lowered.append(diff)
        return np.sign(value - est) * np.sqrt(max(diff, DEV_TOL))

    def _failed(self, value: float) -> np.ndarray:
        return np.concatenate([[value, np.nan], np.full(self.nvar + self.p, np.nan)])

    def variance_trace(self, w: int) -> pd.DataFrame:
        """Trace of variance parameter w: fix it, re-optimize the other sds, correlations
        and sigma within their bounds."""
        scale, dev, nvar = self.scale, self.dev, self.nvar
        free = np.array([k for k in range(nvar) if k != w])
        est = self.var_hat[w]

        def evaluate(value: float, starts: list) -> np.ndarray:
            par = _feasible(scale, w, value, [r[2 : 2 + nvar] for r in starts])
            start = par[free].copy()

            def fun(x):
                par[free] = x
                return dev.at_sigma(scale.to_theta(par), par[-1])

            step = np.where(np.isfinite(scale.upper[free]), 0.05,
                            np.maximum(0.1 * np.abs(start), 1e-3 * max(self.ml.sigma, 1e-8)))
            x, f = _bobyqa(fun, start, scale.lower[free], scale.upper[free], step)
            if not np.isfinite(f):  # no valid point: the trace stops here
                return self._failed(value)
            par[free] = x
            parts = dev.factor(scale.to_theta(par))
            beta = dev.beta(parts[0])[0] if parts is not None else np.full(self.p, np.nan)
            return np.concatenate([[value, self._zeta(value, est, f)], par, beta])

        shift = est * 1.01 if est != 0 else 1e-3
        if shift >= scale.upper[w]:  # a correlation at (or next to) +1: step inwards
            shift = est - 1e-3
        return _trace(evaluate, w, est, self.base_row, scale.lower[w], scale.upper[w], shift,
                      self.delta, self.cutoff, self.names)

    def fixed_trace(self, j: int) -> pd.DataFrame:
        """Trace of fixed effect j: fix it, profile the other coefficients and sigma out in
        closed form, re-optimize theta."""
        scale, dev, nvar = self.scale, self.dev, self.nvar
        est = self.beta_hat[j]
        lower = self.ml.model.lower

        def evaluate(value: float, starts: list) -> np.ndarray:
            thetas = [scale.to_theta(r[2 : 2 + nvar]) for r in starts]
            start = next((t for t in thetas if t is not None), self.theta_hat)
            step = np.maximum(0.1 * np.abs(start), 0.01)
            x, f = _bobyqa(lambda t: dev.at_beta(t, j, value), np.maximum(start, lower),
                           lower, np.full(len(start), np.inf), step)
            parts = dev.factor(x)
            if parts is None or not np.isfinite(f):
                return self._failed(value)
            beta, V = dev.beta(parts[0])
            r = parts[2] + (value - beta[j]) ** 2 / V[j, j]
            beta = beta + V[:, j] / V[j, j] * (value - beta[j])
            sigma = np.sqrt(r / dev.n)
            return np.concatenate([[value, self._zeta(value, est, f)],
                                   scale.from_theta(x, sigma), beta])

        shift = est + self.delta * self.ml.se.to_numpy()[j]
        return _trace(evaluate, nvar + j, est, self.base_row, -np.inf, np.inf, shift,
                      self.delta, self.cutoff, self.names)


def profile(res, which: list[str] | str | None = None) -> Profile:
    """Profile the ML deviance of a fitted LMM over each parameter (lme4's ``profile``).

    Parameters
    ----------
    res : LmmResult
        A fit without residual structure. REML fits are profiled at their ML refit.
    which : list of str or {"theta_", "beta_"}, optional
        Parameters to profile (names as in ``res.confint()``); all by default. ``"theta_"``
        selects the variance parameters, ``"beta_"`` the fixed effects.

    Returns
    -------
    Profile
    """
    ml, refitted = _ml_fit(res)
    pf = _Profiler(ml)
    scale, names, nvar, p = pf.scale, pf.names, pf.nvar, pf.p
    selected = _select(which, names, scale.names, pf.beta_names)
    notes: list[str] = []
    if res.singular:
        notes.append("singular fit: parameters at their bound get the bound as interval end "
                     "(their profile is one-sided)")
    traces = {}
    for w in [k for k in range(nvar) if names[k] in selected]:
        traces[names[w]] = pf.variance_trace(w)
        if pf.var_hat[w] <= scale.lower[w]:
            notes.append(f"{names[w]} is at its lower bound {scale.lower[w]:g}")
        elif pf.var_hat[w] >= scale.upper[w]:
            notes.append(f"{names[w]} is at its upper bound {scale.upper[w]:g}")
    for j in [k for k in range(p) if pf.beta_names[k] in selected]:
        traces[pf.beta_names[j]] = pf.fixed_trace(j)
    if pf.lowered:
        warnings.warn(f"profiling found a deviance {-min(pf.lowered):.3g} below the fit's "
                      "optimum: the fit did not reach the optimum; refit with tighter "
                      "optimizer settings", ConvergenceWarning, stacklevel=2)
    index = pd.Index(names, dtype=object)
    lower = np.concatenate([scale.lower, np.full(p, -np.inf)])
    upper = np.concatenate([scale.upper, np.full(p, np.inf)])
    estimates = np.concatenate([pf.var_hat, pf.beta_hat])
    return Profile(traces=traces, estimates=pd.Series(estimates, index=index, name="estimate"),
                   lower=pd.Series(lower, index=index), upper=pd.Series(upper, index=index),
                   base_deviance=float(pf.base), refitted=refitted, notes=tuple(notes))


def _feasible(scale: SdCorScale, w: int, value: float, candidates: list) -> np.ndarray:
    """A valid starting point (sd, cor, ..., sigma) with parameter w at ``value``: the first
    candidate whose correlation matrices stay valid, else the last one with its other
    correlations shrunk towards 0 until they are (always possible: all zero is valid)."""
    par = np.empty(scale.size)
    for cand in candidates:
        par[:] = np.clip(cand, scale.lower, scale.upper)
        par[w] = value
        if np.all(np.isfinite(par)) and scale.to_theta(par) is not None:
            return par
    cors = np.isfinite(scale.upper)
    cors[w] = False
    for _ in range(200):
        par[cors] *= 0.8
        if scale.to_theta(par) is not None:
            return par
    par[cors] = 0.0
    return par


def _select(which, names, var_names, beta_names) -> set[str]:
    if which is None:
        return set(names)
    if isinstance(which, str):
        which = [which]
    out: set[str] = set()
    for w in which:
        if w == "theta_":
            out |= set(var_names)
        elif w == "beta_":
            out |= set(beta_names)
        elif w in names:
            out.add(w)
        else:
            raise MixedFXError(f"unknown parameter '{w}' to profile; parameters are: "
                               f"{', '.join(names)} (or 'theta_', 'beta_')")
    return out


def _trace(evaluate, k: int, est: float, base_row: np.ndarray, lo: float, hi: float,
           shift: float, delta: float, cutoff: float, names: list[str]) -> pd.DataFrame:
    """Both sides of one parameter's trace, sorted by the parameter.

    Rows are (value, zeta, all parameters...); the walk starts from the estimate and a small
    shift away from it, then goes up from the pair (estimate, shift) and down from (shift,
    estimate); nothing below the estimate when it is at its lower bound.
    """
    row0 = np.concatenate([[est], base_row])
    row1 = evaluate(min(hi, max(lo, shift)), [row0])
    up = _walk(evaluate, [row0, row1], lo, hi, delta, cutoff)
    down = _walk(evaluate, [row1, row0], lo, hi, delta, cutoff) if lo < est < hi else [row0]
    table = np.array(up + down)[:, 1:]
    frame = pd.DataFrame(table, columns=["zeta"] + names)
    frame = frame.drop_duplicates(subset=[names[k]]).sort_values(names[k])
    return frame.reset_index(drop=True)
