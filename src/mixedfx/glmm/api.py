"""``mixedfx.glmm``: generalized linear mixed models, formula and data in, frozen result out."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning, SingularFitWarning
from ..families import Family, family_key, get_family
from ..linalg.solution import solve
from ..lmm import _labels, _varcorr
from .checks import separated_terms
from .laplace import LaplaceFit, fit_laplace
from .model import GlmmModel
from .result import GlmmResult

METHODS = ("laplace", "agq", "pql")
SINGULAR_TOL = 1e-4


def glmm(formula: str, data: object, *, family: str | Family = "binomial",
         link: str | None = None, method: str = "laplace", n_agq: int = 1,
         weights: object = None, offset: object = None, control: dict | None = None,
         data_name: str | None = None):
    """Fit a generalized linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula. A binomial response may be 0/1 (or a two-level factor, first level
        failure), proportions with ``weights=`` the numbers of trials, or
        ``cbind(successes, failures)``.
    data : pandas.DataFrame or polars.DataFrame
        Never modified. Rows with missing values in used columns are dropped.
    family : str or Family, default "binomial"
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"``, ``"negbinomial"``
        (shape estimated, as lme4's ``glmer.nb``) or a family object such as
        ``mixedfx.families.NegativeBinomial(theta=2.0)`` (shape fixed).
    link : str, optional
        The family's default link (R's) when None; e.g. ``"probit"``, ``"cloglog"``.
    method : {"laplace", "agq", "pql"}
        Laplace approximation (lme4's nAGQ = 1; ``n_agq=0`` for its faster variant with beta
        inside PIRLS), adaptive Gauss-Hermite quadrature with ``n_agq`` points per random
        effect (one grouping factor), or penalized quasi-likelihood (as MASS::glmmPQL).
    n_agq : int, default 1
        0 or 1 for ``"laplace"``; the number of quadrature points for ``"agq"``.
    weights, offset : str or array-like, optional
        Prior weights (binomial trials for proportions) and offset on the link scale.
    control : dict, optional
        ``optimizer`` ("bobyqa" or "newuoa"), ``xtol_abs``, ``maxeval``, ``hessian``
        (standard errors from the finite-difference Hessian: default when fewer than 10,000
        observations, as lme4), ``polish`` (True: Newton steps after the optimizer and a
        central-difference Hessian, see :func:`mixedfx.glmm.laplace.fit_laplace`; default
        False).
    data_name : str, optional
        Name of the data shown in the summary.

    Returns
    -------
    GlmmResult
        (:class:`~mixedfx.glmm.pql_result.PqlResult` for ``method="pql"``.)

    Notes
    -----
    The log-likelihood keeps every normalizing constant (binomial coefficients, log y!), so
    Laplace and every n_agq are on one scale; lme4 drops constants for nAGQ > 1.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")
    from ..outofcore.dispatch import is_outofcore  # Parquet, DuckDB, Dask input: issue 7

    if is_outofcore(data):
        from ..outofcore.glmm_dispatch import glmm_outofcore

        return glmm_outofcore(formula, data, family, link=link, method=method, n_agq=n_agq,
                              weights=weights, offset=offset, control=control,
                              data_name=data_name)
    if isinstance(family, str) and family_key(family) == "negative.binomial":
        from . import negbin

        fit_negbin = getattr(negbin, "fit_negbin", None)
        if fit_negbin is None:
            raise ValueError("family='negbinomial' with an estimated shape is not available in "
                             "this version; pass mixedfx.families.NegativeBinomial(theta) to "
                             "fit at a fixed shape theta")
        return fit_negbin(formula, data, link=link, method=method, n_agq=n_agq,
                          weights=weights, offset=offset, control=control,
                          data_name=data_name)
    fam = get_family(family, link)
    if method == "pql":
        from .pql import fit_pql

        return fit_pql(formula, data, fam, weights=weights, offset=offset, control=control,
                       data_name=data_name)
    n_agq = int(n_agq)
    if method == "laplace" and n_agq not in (0, 1):
        raise ValueError(f"method='laplace' takes n_agq 0 or 1, not {n_agq}; for more "
                         "quadrature points use method='agq'")
    if method == "agq" and n_agq < 1:
        raise ValueError(f"method='agq' needs n_agq >= 1 quadrature points, not {n_agq}")
    model = GlmmModel.build(formula, data, fam, weights, offset)
    return fit_model(model, method=method, n_agq=n_agq, control=control, data_name=data_name)


def fit_model(model: GlmmModel, *, method: str = "laplace", n_agq: int = 1,
              control: dict | None = None, data_name: str | None = None,
              start: GlmmResult | None = None) -> GlmmResult:
    """Fit a built :class:`GlmmModel` (``start``: a previous fit to start from)."""
    separated = separated_terms(model)
    if separated:
        warnings.warn(f"complete separation: the response is at its bound on every row where "
                      f"{', '.join(repr(s) for s in separated)} is 1, so the estimate of that "
                      "term goes to infinity and its standard error is meaningless; remove or "
                      "merge the level, or use a penalized (Bayesian) fit",
                      ConvergenceWarning, stacklevel=3)
    with _blas_threads(model):
        fit = _fit(model, method, n_agq, control, start)
        return assemble(model, fit, method, n_agq, data_name)


BLAS_SERIAL_MAX = 1024


def _blas_threads(model: GlmmModel):
    """One BLAS thread while fitting when the engine's dense remainder is small.

    A PIRLS fit factors a small dense matrix thousands of times; OpenBLAS's threads then
    cost far more than they give, worst on a busy machine: measured on 2 shared cores, the
    501-square ``dpotrf`` of a 200,000-row crossed model took 345 ms with 2 threads and
    2.4 ms with one (the whole fit: 258 s -> 49 s). Uses threadpoolctl
    when it is installed.
    """
    m = sum(t.nlevels * t.dim for t in model.engine_terms[1:]) + model.X.shape[1] + 1
    if m > BLAS_SERIAL_MAX:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread count
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _fit(model: GlmmModel, method: str, n_agq: int, control: dict | None,
         start: GlmmResult | None) -> LaplaceFit:
    theta0 = beta0 = None
    if start is not None:
        theta0, beta0 = np.asarray(start.theta), start.fixef.to_numpy()
    if method == "agq" and n_agq > 1:
        from .agq import fit_agq  # adaptive Gauss-Hermite quadrature

        fit = fit_agq(model, n_agq=n_agq, control=control, theta0=theta0, beta0=beta0)
    else:
        fit = fit_laplace(model, n_agq=n_agq, control=control, theta0=theta0, beta0=beta0)
    return fit


def _ranef(model: GlmmModel, fit: LaplaceFit):
    """Conditional modes b = Lambda u and their conditional covariances per grouping factor
    (from the penalized system at the modes, lme4's ``condVar``)."""
    engine = fit.engine
    theta_e = model.tmap.to_engine(fit.theta)
    state = engine.run(theta_e, fit.beta, fit.state.u)
    sol = solve(engine.fz, theta_e)  # blocks hold the IRLS weights at the modes
    factors = engine.factors(theta_e)
    by_group: dict[str, list] = {}
    for pos, k in enumerate(model.perm):
        t = model.terms[k]
        b = state.u[pos] @ factors[pos].T
        index = _labels(t.levels).rename(t.group)
        mode = pd.DataFrame(b, index=index, columns=_labels(t.columns))
        cov = sol.cond_cov[pos] * fit_dispersion(fit, model)
        sd = pd.DataFrame(np.sqrt(np.einsum("jaa->ja", cov)), index=index,
                          columns=_labels(t.columns))
        by_group.setdefault(t.group, []).append((k, mode, sd, cov))
    ranef, ranef_sd, ranef_cov = {}, {}, {}
    for g, items in sorted(by_group.items(), key=lambda kv: min(i[0] for i in kv[1])):
        items.sort(key=lambda i: i[0])
        ranef[g] = pd.concat([i[1] for i in items], axis=1)
        ranef_sd[g] = pd.concat([i[2] for i in items], axis=1)
        dims = [i[3].shape[1] for i in items]
        full = np.zeros((items[0][3].shape[0], sum(dims), sum(dims)))
        s = 0
        for i, d in zip(items, dims, strict=True):
            full[:, s : s + d, s : s + d] = i[3]
            s += d
        ranef_cov[g] = full
    return ranef, ranef_sd, ranef_cov


def fit_dispersion(fit: LaplaceFit, model: GlmmModel) -> float:
    """1 for fixed-dispersion families; mean deviance per unit prior weight otherwise (the
    dispersion lme4's family ``aic`` uses)."""
    if model.family.fixed_dispersion:
        return 1.0
    dev = np.sum(model.family.dev_resids(model.y, fit.state.mu, model.prior))
    return float(dev / np.sum(model.prior))


def assemble(model: GlmmModel, fit, method: str, n_agq: int,
             data_name: str | None) -> GlmmResult:
    """The frozen result from a Laplace or AGQ fit."""
    fam = model.family
    n, p = model.X.shape
    dispersion = fit_dispersion(fit, model)
    varcorr, _ = _varcorr(model.terms, fit.theta, 1.0)
    if fam.fixed_dispersion:
        varcorr = varcorr[varcorr.group != "Residual"].reset_index(drop=True)
    else:
        varcorr.loc[varcorr.group == "Residual", ["vcov", "sdcor"]] = [dispersion,
                                                                      np.sqrt(dispersion)]
    npar = p + len(fit.theta) + (0 if fam.fixed_dispersion else 1)
    loglik = -fit.deviance / 2
    names = _labels(model.fixed_names)
    vcov = np.asarray(fit.vcov)
    ranef, ranef_sd, ranef_cov = _ranef(model, fit)
    mu = fit.state.mu
    lower = model.theta_lower
    singular = bool(np.any(np.abs(fit.theta[np.isfinite(lower)]) < SINGULAR_TOL))
    opt = fit.opt if fit.opt is not None else fit.opt0
    converged = bool(opt.converged)
    if singular:
        warnings.warn("boundary (singular) fit: a variance component is zero or a "
                      "correlation is +-1; see the varcorr table", SingularFitWarning,
                      stacklevel=3)
    return GlmmResult(
        formula=model.formula, family=fam.name, link=fam.link.name, method=method,
        n_agq=n_agq, fixef=pd.Series(fit.beta, index=names, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=names, name="std_error"),
        vcov=pd.DataFrame(vcov, index=names, columns=names), varcorr=varcorr,
        theta=np.asarray(fit.theta, float), loglik=loglik, deviance=float(fit.deviance),
        conditional_deviance=float(np.sum(fam.dev_resids(model.y, mu, model.prior))),
        aic=-2 * loglik + 2 * npar,
        bic=-2 * loglik + np.log(n) * npar, npar=npar, nobs=n,
        n_dropped=model.design.n_dropped, ngroups={t.group: t.nlevels for t in model.terms},
        ranef=ranef, ranef_sd=ranef_sd, ranef_cov=ranef_cov, fitted=mu,
        linear_predictor=fit.state.eta,
        residuals=fam.deviance_residuals(model.y, mu, model.prior), dispersion=dispersion,
        converged=converged, singular=singular, optsum=opt,
        optsum_init=fit.opt0 if fit.opt is not None else None, vcov_method=fit.vcov_method,
        dropped_columns=model.dropped, data_name=data_name, model=model, family_object=fam)
