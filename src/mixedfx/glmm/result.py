"""Frozen result of a GLMM fit by the Laplace approximation or adaptive Gauss-Hermite."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..optimize import OptSummary
from ..outputs import ResultOutputs


@dataclass(frozen=True, eq=False)
class GlmmResult(ResultOutputs):
    """A fitted generalized linear mixed model, computed once and frozen.

    Attributes
    ----------
    formula : str
        The model formula.
    family, link : str
        Family and link names (R's: ``"binomial"``, ``"logit"``).
    method : str
        ``"laplace"`` or ``"agq"``.
    n_agq : int
        Quadrature points per random effect (1: Laplace; 0: lme4's nAGQ = 0 variant).
    fixef, se : pandas.Series
        Fixed effects on the link scale and their standard errors.
    vcov : pandas.DataFrame
        Covariance of the fixed effects (from the finite-difference Hessian of the deviance
        in (theta, beta), as lme4's default, or from the penalized system; see
        ``vcov_method``).
    varcorr : pandas.DataFrame
        Random-effect variances and correlations (``group, term1, term2, vcov, sdcor``); a
        ``Residual`` row only for families with estimated dispersion (Gamma, inverse
        Gaussian), holding the dispersion and its square root.
    theta : numpy.ndarray
        Relative covariance factor parameters (lme4's order).
    loglik : float
        Log-likelihood with all normalizing constants (binomial coefficients, log y!), the
        same scale for Laplace and every n_agq.
    deviance : float
        -2 loglik.
    conditional_deviance : float
        Sum of squared deviance residuals at the conditional modes (lme4's ``deviance()``
        for GLMMs).
    aic, bic : float
        From ``loglik`` with ``npar`` parameters.
    npar, nobs, n_dropped : int
    ngroups : dict
    ranef, ranef_sd, ranef_cov : dict
        Conditional modes of the random effects per grouping factor, their conditional
        standard deviations and covariances (from the penalized system at the modes).
    fitted : numpy.ndarray
        Conditional means on the response scale (proportions for a binomial).
    linear_predictor : numpy.ndarray
        Conditional linear predictor (with offset).
    residuals : numpy.ndarray
        Deviance residuals (R's default for ``residuals()`` of a GLMM).
    dispersion : float
        1 for fixed-dispersion families; the estimate otherwise.
    converged, singular : bool
    optsum : OptSummary
        The final optimization (nAGQ = 1 stage, or nAGQ = 0 when n_agq = 0).
    optsum_init : OptSummary or None
        The nAGQ = 0 stage that started it.
    vcov_method : str
        ``"hessian"`` or ``"pls"``.
    dropped_columns : tuple of str
    data_name : str or None
    model : GlmmModel
        The evaluated model (not serialized).
    family_object : Family
        The family with its link (not serialized).
    """

    formula: str
    family: str
    link: str
    method: str
    n_agq: int
    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    varcorr: pd.DataFrame
    theta: np.ndarray
    loglik: float
    deviance: float
    conditional_deviance: float
    aic: float
    bic: float
    npar: int
    nobs: int
    n_dropped: int
    ngroups: dict
    ranef: dict
    ranef_sd: dict
    ranef_cov: dict
    fitted: np.ndarray
    linear_predictor: np.ndarray
    residuals: np.ndarray
    dispersion: float
    converged: bool
    singular: bool
    optsum: OptSummary
    optsum_init: OptSummary | None = None
    vcov_method: str = "hessian"
    dropped_columns: tuple[str, ...] = ()
    data_name: str | None = None
    model: object = field(default=None, repr=False, compare=False)
    family_object: object = field(default=None, repr=False, compare=False)

    @property
    def sigma(self) -> float:
        """sqrt(dispersion): 1 for binomial and Poisson (lme4's ``sigma()``)."""
        return float(math.sqrt(self.dispersion))

    def coef_table(self) -> pd.DataFrame:
        """Estimates with Wald z tests (``estimate, std_error, statistic, p_value``)."""
        z = self.fixef / self.se
        return pd.DataFrame({"estimate": self.fixef, "std_error": self.se, "statistic": z,
                             "p_value": 2 * stats.norm.sf(np.abs(z))}, index=self.fixef.index)

    def predict(self, newdata: object = None, *, kind: str = "conditional",
                scale: str = "response", allow_new_levels: bool = False,
                offset: object = None) -> pd.Series:
        """Predictions (see :meth:`mixedfx.LmmResult.predict`): ``conditional`` with the
        conditional modes, ``fixed`` g^-1(X beta), ``marginal`` the population mean
        integrating over the random effects (:mod:`mixedfx.marginal`)."""
        from ..predict import cached, from_fit, predict

        link = self.family_object.link
        pm = cached(self, lambda: from_fit(self.formula, self.model, self.fixef,
                                           self.varcorr, self.ranef, link=link))
        return predict(pm, newdata, kind=kind, scale=scale, allow_new_levels=allow_new_levels,
                       offset=offset)

    def confint(self, method: str = "profile", level: float = 0.95, which=None,
                **kwargs) -> pd.DataFrame:
        """Profile (default, as lme4), Wald or bootstrap confidence intervals with lme4's row
        names; see :func:`mixedfx.glmm.confint.confint`."""
        from .confint import confint

        return confint(self, method, level, which, **kwargs)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Responses simulated from the fit (lme4's ``simulate``); see
        :func:`mixedfx.glmm.simulate.simulate`."""
        from .simulate import simulate

        return simulate(self, nsim, seed)

    def bootstrap(self, n: int = 500, *, seed: int | None = None, n_jobs: int = 1,
                  progress: bool | None = None):
        """Parametric bootstrap (lme4's ``bootMer``) with percentile intervals; see
        :func:`mixedfx.glmm.simulate.bootstrap`."""
        from .simulate import bootstrap

        return bootstrap(self, n, seed=seed, n_jobs=n_jobs, progress=progress)

    def summary(self) -> str:
        """Summary text in lme4's ``summary(glmer)`` layout (Wald z tests)."""
        from ..html import SummaryText  # users' side: shown preformatted in notebooks
        from .display import render_glmm

        return SummaryText(render_glmm(self))

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """JSON-serializable dictionary of the result's attributes."""

        def frame(df: pd.DataFrame) -> dict:
            return {"index": [str(i) for i in df.index], "columns": list(map(str, df.columns)),
                    "data": df.to_numpy().tolist()}

        def num(x: object) -> float | None:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

        varcorr = [{k: (num(v) if k in ("vcov", "sdcor") else (None if pd.isna(v) else v))
                    for k, v in row.items()} for row in self.varcorr.to_dict("records")]
        return {
            "formula": self.formula, "family": self.family, "link": self.link,
            "method": self.method, "n_agq": self.n_agq, "data": self.data_name,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "se": {k: float(v) for k, v in self.se.items()}, "vcov": frame(self.vcov),
            "varcorr": varcorr, "theta": [float(t) for t in self.theta],
            "loglik": self.loglik, "deviance": self.deviance,
            "conditional_deviance": self.conditional_deviance, "aic": self.aic,
            "bic": self.bic, "npar": self.npar, "nobs": self.nobs, "n_dropped": self.n_dropped,
            "ngroups": dict(self.ngroups),
            "ranef": {g: frame(df) for g, df in self.ranef.items()},
            "ranef_sd": {g: frame(df) for g, df in self.ranef_sd.items()},
            "fitted": self.fitted.tolist(), "residuals": self.residuals.tolist(),
            "dispersion": self.dispersion, "converged": self.converged,
            "singular": self.singular, "vcov_method": self.vcov_method,
            "optsum": self.optsum.to_dict(),
            "optsum_init": self.optsum_init.to_dict() if self.optsum_init else None,
            "dropped_columns": list(self.dropped_columns),
        }
