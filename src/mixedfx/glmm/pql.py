"""Penalized quasi-likelihood (Breslow and Clayton 1993), as MASS::glmmPQL fits it.

PQL replaces the GLMM by a sequence of weighted linear mixed models on the working response
of the current linear predictor:

    z_i = eta_i + (y_i - mu_i) / g'^-1(eta_i) - offset_i,
    w_i = a_i * (d mu / d eta)_i^2 / V(mu_i)      (a_i: prior weights),

and fits z ~ X beta + Z b with residual variance sigma^2 / w_i by maximum likelihood (nlme's
``lme`` with ``varFixed(~ 1/w)``, here mixedfx's own LMM engine with weights w). The
conditional linear predictor of that fit updates z and w, until it settles:
sum (eta - eta_old)^2 < 1e-6 sum eta^2, at most 10 fits (glmmPQL's rule). The first working
response comes from the GLM without random effects.

As glmmPQL reports them: fixed effects and their covariance from the last LMM with nlme's
small-sample factor N / (N - p) on the ML variance (``summary.lme``'s ``adjustSigma``),
containment degrees of freedom (nlme's ``getFixDF``), random-effect covariances and the
working residual sd sigma. PQL maximizes no likelihood: loglik, deviance, AIC and BIC are
NaN.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..design import ModelDesign, ReTerm, build_design
from ..design.build import as_pandas
from ..errors import ConvergenceWarning, DataError
from ..formula import parse_formula
from ..lmm import LmmModel
from ..results import LmmResult
from .pql_result import PqlResult

MAXITER = 10
TOLERANCE = 1e-6
GLM_MAXITER = 25
GLM_TOLERANCE = 1e-8


# ---------------------------------------------------------------------------------------
# containment degrees of freedom (nlme)


def _varies_within(x: np.ndarray, codes: np.ndarray, nlevels: int) -> bool:
    """Whether column x takes different values inside at least one group."""
    lo = np.full(nlevels, np.inf)
    hi = np.full(nlevels, -np.inf)
    np.minimum.at(lo, codes, x)
    np.maximum.at(hi, codes, x)
    scale = max(1.0, float(np.max(np.abs(x))))
    return bool(np.any(hi - lo > 1e-10 * scale))


def _is_constant(x: np.ndarray) -> bool:
    """Whether x is (nearly) a multiple of a column of ones, as nlme tests it."""
    tol = np.sqrt(np.finfo(float).eps)
    if x[0] == 0:
        return bool(np.all(np.abs(x) < tol))
    return bool(np.all(np.abs(x / x[0] - 1) < tol))


def grouping_levels(terms: tuple[ReTerm, ...] | list[ReTerm]) -> list[ReTerm] | None:
    """Distinct grouping factors from outermost (fewest levels) to innermost, or None when
    they are not nested (each level of an inner factor inside one level of the outer)."""
    by_group: dict[str, ReTerm] = {}
    for t in terms:
        by_group.setdefault(t.group, t)
    levels = sorted(by_group.values(), key=lambda t: t.nlevels)
    for outer, inner in zip(levels, levels[1:], strict=False):
        pairs = np.unique(inner.codes * outer.nlevels + outer.codes)
        if len(pairs) != inner.nlevels:
            return None
    return levels


def containment_df(X: np.ndarray, terms: tuple[ReTerm, ...] | list[ReTerm]) -> np.ndarray:
    """Denominator degrees of freedom of each fixed effect as nlme's ``lme`` reports them.

    Parameters
    ----------
    X : numpy.ndarray
        Fixed-effects model matrix (n, p).
    terms : sequence of ReTerm
        Random-effects terms; their grouping factors must be nested.

    Returns
    -------
    numpy.ndarray
        One df per column of X; NaN when the grouping factors are not nested (nlme's
        strata are then undefined).

    Notes
    -----
    With nested grouping factors of n_1 < ... < n_Q levels, stratum k (k = 1..Q) has
    n_k - n_{k-1} df and the residual stratum N - n_Q. A column of X is estimated in the
    innermost stratum within whose groups it varies (the outermost if it is constant within
    all of them) and takes one df from it; an intercept takes one from the outermost stratum
    and gets the largest remaining df (nlme's ``getFixDF``).
    """
    n, p = X.shape
    levels = grouping_levels(terms)
    if levels is None:
        return np.full(p, np.nan)
    constant = np.array([_is_constant(X[:, j]) for j in range(p)])
    varies = np.array([[_varies_within(X[:, j], t.codes, t.nlevels) for t in levels]
                       for j in range(p)], dtype=bool).reshape(p, len(levels))
    return strata_df(n, [t.nlevels for t in levels], constant, varies)


def strata_df(n: int, nlevels: list[int], constant: np.ndarray, varies: np.ndarray
              ) -> np.ndarray:
    """nlme's containment df from the nested grouping factors' level counts (outermost
    first), which columns are constant, and ``varies[j, k]``: whether column j varies
    within the levels of factor k (see :func:`containment_df`)."""
    p = len(constant)
    sizes = list(nlevels) + [n]
    df = np.diff([0] + sizes).astype(float)
    stratum = np.zeros(p, dtype=int)
    for j in np.flatnonzero(~constant):
        for k in range(len(nlevels)):
            if varies[j, k]:
                stratum[j] = k + 1
    np.subtract.at(df, stratum[~constant], 1.0)
    if constant.any():
        df[0] -= 1
    else:
        df[1:] += 1
    out = df[stratum]
    out[constant] = df.max()
    return out


# ---------------------------------------------------------------------------------------
# the iterations


@dataclass(frozen=True, eq=False)
class PqlState:
    """Where the PQL iterations stopped.

    Attributes
    ----------
    lmm : LmmResult
        The last weighted LMM on the working response.
    eta : numpy.ndarray
        Conditional linear predictor (with offset) of that fit.
    iterations : int
        Number of LMM fits.
    converged : bool
        Whether the linear predictor settled within the allowed fits.
    change : float
        Last relative change sum (eta - eta_old)^2 / sum eta^2.
    """

    lmm: LmmResult
    eta: np.ndarray
    iterations: int
    converged: bool
    change: float


def working(family, y: np.ndarray, eta: np.ndarray, offset: np.ndarray,
            prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Working response (without offset) and working weights at the linear predictor eta."""
    mu = family.linkinv(eta)
    d = family.mu_eta(eta)
    return eta + (y - mu) / d - offset, prior * d**2 / family.variance(mu)


def glm_start(family, y: np.ndarray, X: np.ndarray, offset: np.ndarray,
              prior: np.ndarray) -> np.ndarray:
    """Linear predictor of the GLM without random effects, by IRLS (as R's ``glm.fit``:
    start from the family's mu, stop when the deviance changes by less than 1e-8
    relative)."""
    mu = np.asarray(family.mustart(y, prior), dtype=float)
    eta = family.linkfun(mu)
    dev_old = np.inf
    for _ in range(GLM_MAXITER):
        z, w = working(family, y, eta, offset, prior)
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta = X @ beta + offset
        dev = float(np.sum(family.dev_resids(y, family.linkinv(eta), prior)))
        if abs(dev - dev_old) / (abs(dev) + 0.1) < GLM_TOLERANCE:
            break
        dev_old = dev
    return eta


def iterate(formula: str, design: ModelDesign, family, *, maxiter: int = MAXITER,
            tolerance: float = TOLERANCE, optimizer: str = "newuoa") -> PqlState:
    """Alternate weighted ML fits of the working LMM with working-response updates.

    Parameters
    ----------
    formula : str
        The model formula (for the LMM results' records).
    design : ModelDesign
        The GLMM's design: response on the family's scale (proportions for a binomial with
        trials as prior ``weights``), fixed and random terms, prior weights and offset.
    family : family object
        ``linkinv``, ``linkfun``, ``mu_eta``, ``variance``, ``dev_resids`` and ``mustart``.
    maxiter, tolerance : int, float
        At most ``maxiter`` LMM fits; stop when sum (eta - eta_old)^2 < tolerance sum eta^2.
    """
    y, offset, prior = design.y, design.offset, design.weights
    eta = glm_start(family, y, design.X, offset, prior)
    theta, change, iterations = None, np.inf, 0
    for _ in range(maxiter):
        iterations += 1
        z, w = working(family, y, eta, offset, prior)
        model = LmmModel(formula, replace(design, y=z, weights=w, offset=np.zeros_like(z)),
                         reml=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lmm = model.fit(optimizer=optimizer, theta0=theta,
                            control=None if theta is None else {"initial_step": 0.05})
        theta = lmm.theta
        eta_old, eta = eta, lmm.fitted + offset
        change = float(np.sum((eta - eta_old) ** 2) / np.sum(eta**2))
        if change < tolerance:
            break
    converged = settle(caught, change, tolerance, maxiter, stacklevel=3)
    return PqlState(lmm=lmm, eta=eta, iterations=iterations, converged=converged, change=change)


def settle(caught: list, change: float, tolerance: float, maxiter: int,
           stacklevel: int) -> bool:
    """Re-issue the last working fit's warnings (singular fit, optimizer trouble) and warn
    when the linear predictor did not settle; whether it did. ``stacklevel`` counts from
    the caller of :func:`settle`."""
    for w_ in caught:
        warnings.warn(w_.message, w_.category, stacklevel=stacklevel + 1)
    converged = change < tolerance
    if not converged:
        warnings.warn(f"PQL did not settle in {maxiter} iterations: the linear predictor still "
                      f"changed by {change:.2g} (relative, squared); glmmPQL stops there too. "
                      "Raise control={'maxiter': ...} or use method='laplace'",
                      ConvergenceWarning, stacklevel=stacklevel + 1)
    return converged


def pql_settings(control: dict | None) -> dict:
    """``maxiter``, ``tolerance`` and ``optimizer`` of the working fits, with defaults;
    ValueError naming unknown settings."""
    settings = dict(control or {})
    unknown = set(settings) - {"maxiter", "tolerance", "optimizer"}
    if unknown:
        raise ValueError(f"unknown PQL control setting(s) {', '.join(sorted(unknown))}; use "
                         "maxiter, tolerance, optimizer")
    return {"maxiter": int(settings.get("maxiter", MAXITER)),
            "tolerance": float(settings.get("tolerance", TOLERANCE)),
            "optimizer": settings.get("optimizer", "newuoa")}


# ---------------------------------------------------------------------------------------
# formula and data in, frozen result out

PROPORTION = "_mixedfx_proportion"
_CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def link_of(family) -> object:
    """The family's link as an object with ``name``, ``linkinv`` and ``linkfun``."""
    link = getattr(family, "link", None)
    if link is not None and hasattr(link, "linkinv"):
        return link
    return SimpleNamespace(name=link if isinstance(link, str) else "",
                           linkinv=family.linkinv, linkfun=family.linkfun)


def _split_args(text: str) -> list[str]:
    depth, parts, start = 0, [], 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _column_values(expr: str, data: pd.DataFrame, formula: str) -> np.ndarray:
    if expr in data.columns:
        return data[expr].to_numpy(dtype=float)
    try:
        return np.asarray(data.eval(expr), dtype=float)
    except Exception as exc:  # pandas' evaluation errors
        raise DataError(f"cannot evaluate '{expr}' of the response of '{formula}' on the "
                        f"data: {exc}") from exc


def pql_design(formula: str, data: object, weights: object = None,
               offset: object = None) -> ModelDesign:
    """The GLMM's design: a ``cbind(successes, failures)`` response becomes proportions with
    the trials as prior weights (times any ``weights``), as R's ``glm`` does."""
    parsed = parse_formula(formula)
    match = _CBIND.match(parsed.response)
    if match is None:
        return build_design(parsed, data, weights, offset)
    frame = as_pandas(data)
    parts = _split_args(match.group(1))
    if len(parts) != 2:
        raise DataError(f"cbind() in '{formula}' needs two arguments: successes and failures")
    s, f = (_column_values(p, frame, formula) for p in parts)
    if np.any(s < 0) or np.any(f < 0):
        raise DataError(f"cbind({parts[0]}, {parts[1]}): successes and failures must be "
                        "non-negative counts")
    trials = s + f
    prior = np.ones(len(frame)) if weights is None else (
        frame[weights].to_numpy(dtype=float) if isinstance(weights, str)
        else np.asarray(weights, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        prop = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
    prop[np.isnan(trials)] = np.nan
    new = frame.assign(**{PROPORTION: prop})
    return build_design(replace(parsed, response=PROPORTION), new, trials * prior, offset)


def _check_response(family, design: ModelDesign) -> None:
    check = getattr(family, "validate", None)
    if callable(check):
        check(design.y, design.weights)


def fit_pql(formula: str, data: object, family, *, weights: object = None,
            offset: object = None, control: dict | None = None,
            data_name: str | None = None) -> PqlResult:
    """Fit a GLMM by penalized quasi-likelihood, as MASS::glmmPQL.

    Parameters
    ----------
    formula : str
        lme4 formula; a binomial response may be ``cbind(successes, failures)``, 0/1, or
        proportions with the trials as ``weights``.
    data : pandas.DataFrame or polars.DataFrame
        Never modified.
    family : str or mixedfx.families.Family
        ``"binomial"``, ``"poisson"``, ... or a family object (with its link).
    weights, offset : str or array-like, optional
        Prior weights and offset (column names or one value per row).
    control : dict, optional
        ``maxiter`` (10), ``tolerance`` (1e-6) and ``optimizer`` ("newuoa") of the working
        LMM fits.
    data_name : str, optional
        Name of the data in the summary.

    Returns
    -------
    PqlResult
    """
    from ..families import get_family

    family = get_family(family)
    settings = pql_settings(control)
    design = pql_design(formula, data, weights, offset)
    _check_response(family, design)
    state = iterate(formula, design, family, **settings)
    return assemble(formula, design, family, state, data_name)


def assemble(formula: str, design: ModelDesign, family, state: PqlState,
             data_name: str | None) -> PqlResult:
    """The frozen result from the last working LMM, as glmmPQL reports it."""
    lmm, model = state.lmm, state.lmm.model
    df = containment_df(model.X, model.terms)
    return pql_result(lmm, family, df, nobs=model.X.shape[0], n_dropped=design.n_dropped,
                      iterations=state.iterations, converged=state.converged,
                      change=state.change, dropped_columns=model.dropped,
                      data_name=data_name, model=model, eta=state.eta, y=design.y)


def pql_result(lmm: LmmResult, family, df: np.ndarray, *, nobs: int, n_dropped: int,
               iterations: int, converged: bool, change: float, dropped_columns,
               data_name: str | None, model, eta: np.ndarray | None,
               y: np.ndarray | None) -> PqlResult:
    """A :class:`PqlResult` from the last working LMM: its covariance scaled by nlme's
    adjustSigma (n / (n - p) for ML fits), the containment ``df``; per-row fitted values
    and residuals when ``eta`` and ``y`` are given (None out of core)."""
    p = len(lmm.fixef)
    adjust = nobs / (nobs - p) if nobs > p else np.nan
    vcov = lmm.vcov * adjust
    names = lmm.fixef.index
    mu = None if eta is None else np.asarray(family.linkinv(eta), dtype=float)
    return PqlResult(
        formula=lmm.formula, family=str(getattr(family, "name", "")),
        link=str(getattr(link_of(family), "name", "")), fixef=lmm.fixef,
        se=pd.Series(np.sqrt(np.diag(vcov.to_numpy())), index=names, name="std_error"),
        vcov=vcov, df=pd.Series(df, index=names, name="df"), varcorr=lmm.varcorr,
        sigma=lmm.sigma, theta=lmm.theta, npar=lmm.npar, nobs=nobs, n_dropped=n_dropped,
        ngroups=lmm.ngroups, ranef=lmm.ranef, ranef_sd=lmm.ranef_sd, ranef_cov=lmm.ranef_cov,
        fitted=mu, linear_predictor=eta, residuals=None if mu is None else y - mu,
        converged=converged, singular=lmm.singular, iterations=iterations, change=change,
        dropped_columns=dropped_columns, data_name=data_name, model=model,
        family_object=family)
