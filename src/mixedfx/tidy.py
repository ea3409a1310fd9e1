"""Tidy tables of a fit, as broom.mixed makes them: ``tidy`` (one row per parameter) and
``glance`` (one row per model).

Column names are broom's with Python spelling (``std_error``, ``p_value``, ``conf_low``).
Random-effect parameters are named as broom.mixed names them: ``sd__(Intercept)``,
``cor__(Intercept).Days`` within their group, and ``sd__Observation`` for the residual.
Residual correlation and variance parameters of structured-residual fits follow in group
``Residual`` as ``resid__<name>`` with nlme's names (``resid__Phi`` of an AR(1),
``resid__Female`` of a ``VarIdent("Sex")`` ratio, ``resid__power`` of a ``VarPower``).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import DataError

TIDY_COLUMNS = ["effect", "group", "term", "estimate", "std_error", "statistic", "df",
                "p_value", "conf_low", "conf_high"]


def _fixed_rows(res, ddf: str | None) -> pd.DataFrame:
    """Fixed effects with tests: the result's coef_table when it has one, else Wald z."""
    table = None
    coef_table = getattr(res, "coef_table", None)
    takes_ddf = callable(coef_table) and "ddf" in inspect.signature(coef_table).parameters
    if ddf is not None and not takes_ddf and ddf != "asymptotic":
        raise DataError(f"ddf='{ddf}' is not available for {type(res).__name__}: its fixed "
                        "effects are tested by z statistics; use ddf='asymptotic' or None")
    if takes_ddf and ddf is not None:
        table = coef_table(ddf=ddf)  # asked for: its errors (df not available) are the answer
    elif callable(coef_table):
        try:
            table = coef_table()
        except Exception:  # noqa: BLE001 - a model without df support falls back to Wald
            table = None
    if table is None:
        est, se = res.fixef.to_numpy(float), res.se.to_numpy(float)
        z = np.divide(est, se, out=np.full_like(est, np.nan), where=se > 0)
        table = pd.DataFrame({"estimate": est, "std_error": se, "df": np.inf, "statistic": z,
                              "p_value": 2 * stats.norm.sf(np.abs(z))}, index=res.fixef.index)
    out = pd.DataFrame({"effect": "fixed", "group": None, "term": list(table.index),
                        "estimate": table["estimate"].to_numpy(float),
                        "std_error": table["std_error"].to_numpy(float),
                        "statistic": table["statistic"].to_numpy(float),
                        "df": (table["df"].to_numpy(float) if "df" in table.columns
                               else np.full(len(table), np.inf)),  # z tests
                        "p_value": table["p_value"].to_numpy(float)})
    return out


def _ran_pars_rows(res) -> tuple[pd.DataFrame, list[str]]:
    """Random-effect sds and correlations (broom.mixed's ran_pars) and their confint names."""
    rows, names = [], []
    for r in res.varcorr.itertuples(index=False):
        if r.group == "Residual":
            rows.append(("Residual", "sd__Observation", r.sdcor))
            names.append("sigma")
        elif r.term2 is None or (isinstance(r.term2, float) and math.isnan(r.term2)):
            rows.append((r.group, f"sd__{r.term1}", r.sdcor))
            names.append(f"sd_{r.term1}|{r.group}")
        else:
            rows.append((r.group, f"cor__{r.term1}.{r.term2}", r.sdcor))
            names.append(f"cor_{r.term2}.{r.term1}|{r.group}")
    # residual correlation and variance parameters (nlme's Phi, varIdent ratios, power)
    for key, value in (getattr(res, "residual_params", None) or {}).items():
        rows.append(("Residual", f"resid__{key}", float(value)))
        names.append(f"resid__{key}")
    frame = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    frame.insert(0, "effect", "ran_pars")
    for col in ("std_error", "statistic", "df", "p_value"):
        frame[col] = np.nan
    return frame, names


def _ran_vals_rows(res, conf_level: float) -> pd.DataFrame:
    """Conditional modes with their conditional sds (broom.mixed's ran_vals), by group,
    term and level; intervals are mode -+ z sd, the intervals of lme4's dotplot."""
    z = stats.norm.ppf(0.5 + conf_level / 2)
    parts = []
    for group, modes in res.ranef.items():
        sds = res.ranef_sd[group]
        for term in modes.columns:
            est = modes[term].to_numpy(float)
            se = sds[term].to_numpy(float)
            parts.append(pd.DataFrame({
                "effect": "ran_vals", "group": group, "level": [str(v) for v in modes.index],
                "term": str(term), "estimate": est, "std_error": se, "statistic": np.nan,
                "df": np.nan, "p_value": np.nan, "conf_low": est - z * se,
                "conf_high": est + z * se}))
    return pd.concat(parts, ignore_index=True)


def tidy(res, *, effects: tuple[str, ...] = ("fixed", "ran_pars"), conf_int: bool = False,
         conf_level: float = 0.95, conf_method: str = "wald", ddf: str | None = None
         ) -> pd.DataFrame:
    """One row per parameter, as ``broom.mixed::tidy``.

    Parameters
    ----------
    res : LmmResult or GlmmResult
        A fitted model.
    effects : tuple of {"fixed", "ran_pars", "ran_vals"}
        Which parameters to list. ``"ran_vals"`` adds one row per level and term of each
        grouping factor: the conditional mode, its conditional sd as ``std_error`` and, with
        ``conf_int``, the conditional interval; the table then has a ``level`` column
        after ``group`` (None for the other rows).
    conf_int : bool, default False
        Add ``conf_low`` and ``conf_high`` (NaN otherwise).
    conf_level : float
        Confidence level of the intervals.
    conf_method : {"wald", "profile", "bootstrap"}
        Passed to ``res.confint``; Wald intervals exist only for fixed effects (as lme4's).
    ddf : str, optional
        Denominator degrees of freedom of the fixed-effect tests when the result supports
        them (``"satterthwaite"``, ``"kenward-roger"``, ``"asymptotic"``); by default the
        result's own default (Satterthwaite for LMMs, z tests for GLMMs).

    Returns
    -------
    pandas.DataFrame
        Columns ``effect, group, term, estimate, std_error, statistic, df, p_value,
        conf_low, conf_high``.
    """
    if isinstance(effects, str):
        effects = (effects,)
    unknown = set(effects) - {"fixed", "ran_pars", "ran_vals"}
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; use 'fixed', 'ran_pars' and/or "
                         "'ran_vals'")
    parts, ci_names = [], []
    if "fixed" in effects:
        fixed = _fixed_rows(res, ddf)
        parts.append(fixed)
        ci_names += list(fixed["term"])
    if "ran_pars" in effects:
        ran, names = _ran_pars_rows(res)
        parts.append(ran)
        ci_names += names
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TIDY_COLUMNS)
    out["conf_low"] = np.nan
    out["conf_high"] = np.nan
    if conf_int and len(out):
        if callable(getattr(res, "confint", None)):
            ci = res.confint(method=conf_method, level=conf_level)
            lower = ci.iloc[:, 0].reindex(ci_names).to_numpy(float)
            upper = ci.iloc[:, 1].reindex(ci_names).to_numpy(float)
        elif conf_method == "wald":  # results without confint: Wald for the fixed effects
            z = stats.norm.ppf(0.5 + conf_level / 2)
            fixed = (out["effect"] == "fixed").to_numpy()
            est, se = out["estimate"].to_numpy(float), out["std_error"].to_numpy(float)
            lower = np.where(fixed, est - z * se, np.nan)
            upper = np.where(fixed, est + z * se, np.nan)
        else:
            raise ValueError(f"{type(res).__name__} has no {conf_method} intervals; use "
                             "conf_method='wald'")
        out["conf_low"], out["conf_high"] = lower, upper
    out["group"] = out["group"].astype(object)
    if "ran_vals" not in effects:
        return out[TIDY_COLUMNS]
    vals = _ran_vals_rows(res, conf_level)
    if not conf_int:
        vals["conf_low"] = vals["conf_high"] = np.nan
    columns = TIDY_COLUMNS[:2] + ["level"] + TIDY_COLUMNS[2:]
    out = pd.concat([out.assign(level=None), vals], ignore_index=True) if len(out) else vals
    out["group"] = out["group"].astype(object)
    out["level"] = out["level"].astype(object)
    return out[columns]


def glance(res) -> pd.DataFrame:
    """One row per model, as ``broom.mixed::glance``.

    Columns: ``nobs, sigma, loglik, aic, bic, deviance, objective, df_residual, npar,
    converged, singular`` (``sigma`` is NaN for families without a dispersion parameter).
    """
    sigma = getattr(res, "sigma", float("nan"))
    row = {"nobs": int(res.nobs), "sigma": float(sigma) if sigma is not None else np.nan,
           "loglik": float(res.loglik), "aic": float(res.aic), "bic": float(res.bic),
           "deviance": float(getattr(res, "deviance", np.nan)),
           "objective": float(getattr(res, "objective", np.nan)),
           "df_residual": int(res.nobs - res.npar), "npar": int(res.npar),
           "converged": bool(res.converged), "singular": bool(res.singular)}
    return pd.DataFrame([row])
