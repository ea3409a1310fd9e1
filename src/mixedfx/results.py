"""Frozen result of a linear mixed model fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .optimize import OptSummary
from .outputs import ResultOutputs


@dataclass(frozen=True, eq=False)
class LmmResult(ResultOutputs):
    """A fitted linear mixed model, computed once and frozen.

    Attributes
    ----------
    formula : str
        The model formula.
    reml : bool
        True for a REML fit, False for maximum likelihood.
    fixef : pandas.Series
        Fixed-effects estimates (beta) by term name.
    se : pandas.Series
        Standard errors of the fixed effects.
    vcov : pandas.DataFrame
        Covariance matrix of the fixed-effects estimates.
    varcorr : pandas.DataFrame
        Variance components as R's ``as.data.frame(VarCorr(m))``: columns ``group, term1,
        term2, vcov, sdcor``; one row per variance (sdcor = sd), per covariance (sdcor =
        correlation) and a ``Residual`` row.
    sigma : float
        Residual standard deviation.
    theta : numpy.ndarray
        Relative covariance factor parameters (lme4's order: terms as in ``varcorr``, lower
        triangle by column).
    loglik : float
        Log-likelihood (REML log-likelihood for a REML fit, as lme4 reports).
    objective : float
        REML criterion or ML deviance at the optimum (-2 loglik).
    deviance : float
        ML deviance; for a REML fit, -2 times the ML log-likelihood at the REML estimates.
    aic, bic : float
        Information criteria from ``loglik`` with ``npar`` parameters.
    npar : int
        Number of estimated parameters: fixed effects, theta and sigma.
    nobs : int
        Observations used (after dropping missing values).
    n_dropped : int
        Rows dropped for missing values.
    ngroups : dict
        Levels per grouping factor.
    ranef : dict
        Grouping factor -> DataFrame of conditional modes (levels x terms).
    ranef_sd : dict
        Grouping factor -> DataFrame of conditional standard deviations.
    ranef_cov : dict
        Grouping factor -> array (levels, terms, terms) of conditional covariances.
    fitted, residuals : numpy.ndarray
        Conditional fitted values and response residuals.
    converged : bool
        Whether the optimizer reported convergence.
    singular : bool
        Boundary fit: a diagonal element of a relative covariance factor is (near) zero.
    optsum : OptSummary
        Record of the optimization.
    dropped_columns : tuple of str
        Aliased fixed-effects columns dropped for rank deficiency.
    data_name : str or None
        Name of the data shown in the summary.
    weights_used : bool
        Whether prior weights other than 1 were given.
    residual_params : dict
        Parameters of a residual covariance structure in nlme's parameterization (empty for
        sigma^2 I).
    model : LmmModel
        The model the result was fitted from (design and blocks), for inference that
        evaluates the objective elsewhere; not serialized.
    """

    formula: str
    reml: bool
    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    varcorr: pd.DataFrame
    sigma: float
    theta: np.ndarray
    loglik: float
    objective: float
    deviance: float
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
    residuals: np.ndarray
    scaled_residuals: np.ndarray
    converged: bool
    singular: bool
    optsum: OptSummary
    dropped_columns: tuple[str, ...] = ()
    data_name: str | None = None
    weights_used: bool = field(default=False)
    residual_params: dict = field(default_factory=dict)
    model: object = field(default=None, repr=False, compare=False)

    @property
    def df_residual(self) -> int:
        """Residual degrees of freedom as lme4 prints them: nobs - npar."""
        return self.nobs - self.npar

    def icc(self) -> pd.Series:
        """Intraclass correlation per grouping factor with a random intercept.

        Returns
        -------
        pandas.Series
            For each grouping factor g with an ``(Intercept)`` variance sigma_g^2:
            sigma_g^2 / (sum of all random-intercept variances + sigma^2). For random-slope
            models this is the ICC at the covariates' zero.
        """
        vc = self.varcorr
        ints = vc[(vc.term1 == "(Intercept)") & vc.term2.isna()]
        total = ints.vcov.sum() + self.sigma**2
        return pd.Series((ints.vcov / total).to_numpy(), index=ints.group.to_numpy(), name="icc")

    # --- outofcore (issue 7): per-row outputs of an out-of-core fit, written to Parquet ---
    def write_fitted(self, path):
        """Write fitted values and residuals of an out-of-core fit to Parquet at ``path``
        (through DuckDB or Dask; the rows never enter Python). See docs/outofcore.md."""
        from .outofcore.write import write_fitted

        return write_fitted(self, path)

    # --- glmm-extras: predictions (mixedfx.predict) ---
    def predict(self, newdata: object = None, *, kind: str = "conditional",
                scale: str = "response", allow_new_levels: bool = False,
                offset: object = None) -> pd.Series:
        """Predictions on the fitted data or on ``newdata``.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict; None predicts the fitted rows. Needs the model's columns
            (the response is not needed); rows with missing values give NaN.
        kind : {"conditional", "fixed", "marginal"}
            ``conditional`` adds the conditional modes (BLUPs) of the rows' levels;
            ``fixed`` uses x'beta only (lme4's ``re.form=NA``); ``marginal`` is the
            population mean over the random effects (equal to ``fixed`` for an LMM).
        scale : {"response", "link"}
            Identical for an LMM (identity link).
        allow_new_levels : bool, default False
            Levels of a grouping factor not in the fit get random effect zero (the
            population prediction) instead of raising a DataError.
        offset : str or array-like, optional
            The new data's offset (a column name or values), needed when the model has one.

        Returns
        -------
        pandas.Series
            One prediction per row, indexed as ``newdata``.
        """
        from .predict import cached, from_fit, predict

        pm = cached(self, lambda: from_fit(self.formula, self.model, self.fixef, self.varcorr,
                                           self.ranef))
        return predict(pm, newdata, kind=kind, scale=scale, allow_new_levels=allow_new_levels,
                       offset=offset)

    # --- inference-intervals: profile, confint, simulate, bootstrap, variance_decomposition ---
    def profile(self, which: list[str] | str | None = None):
        """Likelihood profiles (zeta traces) of the parameters, as lme4's ``profile``;
        see :func:`mixedfx.inference.profile.profile`."""
        from .inference.profile import profile

        return profile(self, which)

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals (``"profile"``, ``"wald"`` or ``"bootstrap"``) with lme4's
        row names; see :func:`mixedfx.inference.confint.confint`."""
        from .inference.confint import confint

        return confint(self, method, level, **kwargs)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Responses simulated from the fit, as lme4's ``simulate``; see
        :func:`mixedfx.inference.simulate.simulate`."""
        from .inference.simulate import simulate

        return simulate(self, nsim, seed)

    def bootstrap(self, n: int = 500, *, seed: int | None = None, n_jobs: int = 1,
                  progress: bool | None = None):
        """Parametric bootstrap (simulate, refit) with percentile intervals; see
        :func:`mixedfx.inference.bootstrap.bootstrap`."""
        from .inference.bootstrap import bootstrap

        return bootstrap(self, n, seed=seed, n_jobs=n_jobs, progress=progress)

    def variance_decomposition(self):
        """Each variance component, its share of the total and the ICC; see
        :func:`mixedfx.inference.decomposition.variance_decomposition`."""
        from .inference.decomposition import variance_decomposition

        return variance_decomposition(self)

    # --- tests of fixed effects (inference-ddf: coef_table, ftests, satterthwaite,
    # kenward_roger) ---
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with t tests (estimate, std_error, df, statistic, p_value);
        ``ddf`` is "satterthwaite" (lmerTest's default), "kenward-roger" (pbkrtest) or
        "asymptotic" (z tests). See :func:`mixedfx.inference.coef_table.coef_table`."""
        from .inference.coef_table import coef_table

        return coef_table(self, ddf)

    def anova(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """F test of each fixed-effect term as lmerTest's ``anova`` (sum_sq, mean_sq, num_df,
        den_df, F, p_value), type III; see :func:`mixedfx.inference.ftests.anova`."""
        from .inference.ftests import anova

        return anova(self, ddf)

    def summary(self) -> str:
        """lme4-style summary text (a ``str``; shown preformatted in notebooks)."""
        from .html import SummaryText
        from .summary import render_lmm

        return SummaryText(render_lmm(self))

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML" if self.reml else "ML"
        return (f"<LmmResult {self.formula!r} ({crit}) nobs={self.nobs} "
                f"objective={self.objective:.4f}>")

    def to_dict(self) -> dict:
        """JSON-serializable dictionary of every result attribute."""

        def frame(df: pd.DataFrame) -> dict:
            return {"index": [str(i) for i in df.index], "columns": list(df.columns),
                    "data": df.to_numpy().tolist()}

        def num(x: float) -> float | None:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

        varcorr = [{k: (num(v) if k in ("vcov", "sdcor") else (None if pd.isna(v) else v))
                    for k, v in row.items()} for row in self.varcorr.to_dict("records")]
        return {
            "formula": self.formula, "reml": self.reml, "data": self.data_name,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "se": {k: float(v) for k, v in self.se.items()},
            "vcov": frame(self.vcov), "varcorr": varcorr, "sigma": self.sigma,
            "theta": [float(t) for t in self.theta], "loglik": self.loglik,
            "objective": self.objective, "deviance": self.deviance, "aic": self.aic,
            "bic": self.bic, "npar": self.npar, "nobs": self.nobs, "n_dropped": self.n_dropped,
            "ngroups": dict(self.ngroups),
            "ranef": {g: frame(df) for g, df in self.ranef.items()},
            "ranef_sd": {g: frame(df) for g, df in self.ranef_sd.items()},
            "icc": {k: float(v) for k, v in self.icc().items()},
            "fitted": None if self.fitted is None else self.fitted.tolist(),  # None: out of core
            "residuals": None if self.residuals is None else self.residuals.tolist(),
            "converged": self.converged, "singular": self.singular,
            "dropped_columns": list(self.dropped_columns), "optsum": self.optsum.to_dict(),
            "residual_params": {k: float(v) for k, v in self.residual_params.items()},
        }
