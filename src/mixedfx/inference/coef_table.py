"""The table of fixed effects with t tests under a choice of denominator df."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

DDF_METHODS = ("satterthwaite", "kenward-roger", "asymptotic")


def ddf_method(ddf: str) -> str:
    """Normalize a ddf name ("Satterthwaite", "kenward_roger", "KR", ...) or raise."""
    method = str(ddf).lower().replace("_", "-")
    method = {"kr": "kenward-roger", "kenward": "kenward-roger", "wald": "asymptotic",
              "z": "asymptotic"}.get(method, method)
    if method not in DDF_METHODS:
        raise ValueError(f"unknown ddf '{ddf}'; use 'satterthwaite', 'kenward-roger' or "
                         "'asymptotic'")
    return method


def coef_table(res, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed effects with t tests: estimate, std_error, df, statistic, p_value.

    Parameters
    ----------
    res : LmmResult
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}
        Satterthwaite as lmerTest; Kenward-Roger as pbkrtest (standard errors from the
        adjusted covariance, as lmerTest's ``summary(ddf="Kenward-Roger")``); asymptotic:
        z tests (infinite df).

    Returns
    -------
    pandas.DataFrame
        Indexed by the fixed-effect names.
    """
    method = ddf_method(ddf)
    est = res.fixef.to_numpy(float)
    if method == "asymptotic":
        se = res.se.to_numpy(float)
        df = np.full(len(est), np.inf)
    elif method == "satterthwaite":
        from .satterthwaite import contrast_df, satterthwaite_parts

        parts = satterthwaite_parts(res)
        se = np.sqrt(np.diag(parts.vcov))
        df = np.array([contrast_df(parts, row) for row in np.eye(len(est))])
    else:
        from .kenward_roger import kenward_roger_parts

        kr = kenward_roger_parts(res)
        se = np.sqrt(np.diag(kr.vcov_adjusted))
        df = np.array([kr.single_df(row) for row in np.eye(len(est))])
    t = est / se
    p = 2 * stats.t.sf(np.abs(t), df)
    return pd.DataFrame({"estimate": est, "std_error": se, "df": df, "statistic": t,
                         "p_value": p}, index=res.fixef.index)
