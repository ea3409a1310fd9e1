"""Frozen result of a PQL fit (:func:`mixedfx.glmm.pql.fit_pql`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError
from ..outputs import ResultOutputs


@dataclass(frozen=True, eq=False)
class PqlResult(ResultOutputs):
    """A GLMM fitted by penalized quasi-likelihood, as MASS::glmmPQL reports it.

    The attributes of a GLMM result where they make sense; PQL maximizes no likelihood, so
    ``loglik``, ``deviance``, ``aic`` and ``bic`` are NaN.

    Attributes
    ----------
    formula : str
        The model formula.
    family, link : str
        Family and link names.
    method : str
        ``"pql"``.
    n_agq : int
        1 (kept for a common interface with Laplace and AGQ results).
    fixef : pandas.Series
        Fixed effects (beta) on the link scale.
    se : pandas.Series
        Standard errors: the working LMM's ML covariance times N / (N - p), as nlme's
        ``summary.lme`` reports them (``adjustSigma``).
    vcov : pandas.DataFrame
        Covariance of the fixed effects on the same scale as ``se``.
    df : pandas.Series
        Containment degrees of freedom of each fixed effect (nlme's ``getFixDF``; NaN for
        crossed grouping factors).
    varcorr : pandas.DataFrame
        Random-effect variances and correlations on the link scale, and a ``Residual`` row:
        the working residual sd sigma (glmmPQL's "Residual"; 1 would mean no over- or
        underdispersion relative to the family's variance).
    sigma : float
        Working residual standard deviation.
    theta : numpy.ndarray
        Relative covariance factors of the working LMM (relative to ``sigma``).
    loglik, deviance, aic, bic : float
        NaN: PQL has no likelihood.
    npar, nobs, n_dropped : int
        Parameters (fixed, theta, sigma), observations used, rows dropped for missing values.
    ngroups : dict
        Levels per grouping factor.
    ranef, ranef_sd, ranef_cov : dict
        Conditional modes, their sds and covariances per grouping factor (working LMM).
    fitted : numpy.ndarray
        Conditional means g^-1(eta) on the response scale (proportions for a binomial).
    linear_predictor : numpy.ndarray
        Conditional linear predictor eta (with offset).
    residuals : numpy.ndarray
        Response residuals y - fitted.
    converged : bool
        Whether the linear predictor settled within the allowed iterations.
    singular : bool
        Whether the working LMM is a boundary fit.
    iterations : int
        Number of weighted LMM fits.
    change : float
        Last relative change of the linear predictor, sum (eta - eta_old)^2 / sum eta^2.
    dropped_columns : tuple of str
        Aliased fixed-effects columns dropped.
    data_name : str or None
        Name of the data in the summary.
    model : LmmModel
        The last working LMM (its design holds the model frame); not serialized.
    family_object : object
        The family used (link functions for predictions); not serialized.
    """

    formula: str
    family: str
    link: str
    fixef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    df: pd.Series
    varcorr: pd.DataFrame
    sigma: float
    theta: np.ndarray
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
    converged: bool
    singular: bool
    iterations: int
    change: float
    dropped_columns: tuple[str, ...] = ()
    data_name: str | None = None
    method: str = "pql"
    n_agq: int = 1
    loglik: float = math.nan
    deviance: float = math.nan
    aic: float = math.nan
    bic: float = math.nan
    model: object = field(default=None, repr=False, compare=False)
    family_object: object = field(default=None, repr=False, compare=False)

    def coef_table(self) -> pd.DataFrame:
        """Estimates with t tests on the containment df, as glmmPQL's summary shows them
        (``estimate, std_error, df, statistic, p_value``; normal p-values where df is NaN)."""
        t = self.fixef / self.se
        df = self.df.to_numpy()
        p = np.where(np.isfinite(df), 2 * stats.t.sf(np.abs(t), np.where(np.isfinite(df), df, 1)),
                     2 * stats.norm.sf(np.abs(t)))
        return pd.DataFrame({"estimate": self.fixef, "std_error": self.se, "df": self.df,
                             "statistic": t, "p_value": p}, index=self.fixef.index)

    def predict(self, newdata: object = None, *, kind: str = "conditional",
                scale: str = "response", allow_new_levels: bool = False,
                offset: object = None) -> pd.Series:
        """Predictions; see :meth:`mixedfx.LmmResult.predict`. ``marginal`` integrates the
        inverse link over the random effects (:mod:`mixedfx.marginal`)."""
        from ..predict import cached, from_fit, predict
        from .pql import link_of

        if self.model is None:
            raise DataError("this PQL fit was made out of core and holds no rows to predict "
                            "from; fit in memory (a pandas or polars frame) to predict")

        pm = cached(self, lambda: from_fit(self.formula, self.model, self.fixef,
                                           self.varcorr, self.ranef,
                                           link=link_of(self.family_object)))
        return predict(pm, newdata, kind=kind, scale=scale, allow_new_levels=allow_new_levels,
                       offset=offset)

    def summary(self) -> str:
        """Summary text in lme4's layout with glmmPQL's quantities."""
        from ..summary import fixed_effects_table, random_effects_table

        ct = self.coef_table()
        if ct.df.notna().any():
            extra = pd.DataFrame({"DF": ct.df, "Pr(>|t|)": ct.p_value})
            stat, title = "t value", "Fixed effects (t tests on nlme's containment df):"
        else:
            extra = pd.DataFrame({"Pr(>|z|)": ct.p_value})
            stat, title = "z value", ("Fixed effects (z tests: crossed grouping factors have "
                                      "no containment df):")
        groups = ", ".join(f"{g}, {n}" for g, n in self.ngroups.items())
        status = "converged" if self.converged else f"NOT converged (change {self.change:.2g})"
        lines = [
            "Generalized linear mixed model fit by penalized quasi-likelihood (PQL; "
            "as MASS::glmmPQL)",
            f" Family: {self.family}  ( {self.link} )",
            f"Formula: {self.formula}",
            *([f"   Data: {self.data_name}"] if self.data_name else []),
            "PQL maximizes no likelihood: logLik, deviance, AIC and BIC are not available;",
            "compare models fitted by method='laplace' or 'agq' instead.",
            "",
            "Random effects (link scale; Residual: working residual sd):",
            *random_effects_table(self.varcorr),
            f"Number of obs: {self.nobs}, groups:  {groups}",
            "",
            title,
            *fixed_effects_table(self.fixef, self.se, stat, extra),
            "",
            f"PQL iterations: {self.iterations} ({status})",
        ]
        if self.dropped_columns:
            lines.append(f"Dropped aliased columns: {', '.join(self.dropped_columns)}")
        from ..html import SummaryText  # users' side: shown preformatted in notebooks

        return SummaryText("\n".join(lines))

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<PqlResult {self.formula!r} ({self.family}, {self.link}) nobs={self.nobs} "
                f"iterations={self.iterations}>")

    def to_dict(self) -> dict:
        """JSON-serializable dictionary of the result (NaN as None)."""

        def num(x):
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

        def frame(df: pd.DataFrame) -> dict:
            return {"index": [str(i) for i in df.index], "columns": list(df.columns),
                    "data": df.to_numpy().tolist()}

        varcorr = [{k: (num(v) if k in ("vcov", "sdcor") else (None if pd.isna(v) else v))
                    for k, v in row.items()} for row in self.varcorr.to_dict("records")]
        return {
            "formula": self.formula, "family": self.family, "link": self.link,
            "method": self.method, "n_agq": self.n_agq, "data": self.data_name,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "se": {k: float(v) for k, v in self.se.items()},
            "df": {k: num(v) for k, v in self.df.items()},
            "vcov": frame(self.vcov), "varcorr": varcorr, "sigma": self.sigma,
            "theta": [float(t) for t in self.theta], "loglik": None, "deviance": None,
            "aic": None, "bic": None, "npar": self.npar, "nobs": self.nobs,
            "n_dropped": self.n_dropped, "ngroups": dict(self.ngroups),
            "ranef": {g: frame(df) for g, df in self.ranef.items()},
            "ranef_sd": {g: frame(df) for g, df in self.ranef_sd.items()},
            "fitted": None if self.fitted is None else self.fitted.tolist(),
            "linear_predictor": (None if self.linear_predictor is None
                                 else self.linear_predictor.tolist()),
            "converged": self.converged, "singular": self.singular,
            "iterations": self.iterations, "change": self.change,
            "dropped_columns": list(self.dropped_columns),
        }
