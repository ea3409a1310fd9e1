"""Confidence intervals of a fitted LMM: Wald, likelihood profile or parametric bootstrap.

Rows as lme4's ``confint(fit, oldNames=FALSE)``: the variance parameters on the standard
deviation / correlation scale (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``,
``sd_Days|Subject``, ``sigma``), then the fixed effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MixedFXError
from .parameters import SdCorScale

METHODS = ("wald", "profile", "bootstrap")


def parameter_names(res) -> list[str]:
    """lme4's names of the variance parameters (sd_, cor_, sigma) of a fit."""
    model = getattr(res, "model", None)
    if model is None:
        raise MixedFXError("this result does not keep its model (deserialized?): fit it again")
    return SdCorScale(model.terms).names


def wald(res, level: float) -> pd.DataFrame:
    """Wald intervals of the fixed effects (estimate -+ z * se); NaN for variance parameters,
    as lme4's ``confint(method="Wald")``."""
    z = stats.norm.ppf((1 + level) / 2)
    var_names = parameter_names(res)
    est, se = res.fixef.to_numpy(), res.se.to_numpy()
    lower = np.concatenate([np.full(len(var_names), np.nan), est - z * se])
    upper = np.concatenate([np.full(len(var_names), np.nan), est + z * se])
    index = pd.Index(var_names + list(res.fixef.index), dtype=object)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=index)


def confint(res, method: str = "profile", level: float = 0.95, *, which=None,
            nsim: int = 500, seed: int | None = None, n_jobs: int = 1,
            progress: bool | None = None) -> pd.DataFrame:
    """Confidence intervals of the parameters of a fitted LMM.

    Parameters
    ----------
    res : LmmResult
    method : {"profile", "wald", "bootstrap"}
        ``"profile"`` (default, as lme4): invert the likelihood-ratio profile of the ML fit
        (:func:`mixedfx.inference.profile.profile`). ``"wald"``: estimate -+ z se for the fixed
        effects, NaN for variance parameters. ``"bootstrap"``: percentile intervals of a
        parametric bootstrap (:func:`mixedfx.inference.bootstrap.bootstrap`).
    level : float, default 0.95
        Confidence level.
    which : list of str or {"theta_", "beta_"}, optional
        Parameters to report (all by default); with ``"profile"`` only these are profiled.
    nsim, seed, n_jobs, progress
        Bootstrap settings (``method="bootstrap"`` only).

    Returns
    -------
    pandas.DataFrame
        Columns ``lower`` and ``upper``; rows ``sd_...``, ``cor_...``, ``sigma``, then the fixed
        effects.
    """
    if not 0 < level < 1:
        raise MixedFXError(f"level must be between 0 and 1, got {level}")
    method = method.lower()
    if method == "wald":
        out = wald(res, level)
    elif method == "profile":
        from .profile import profile

        return profile(res, which).confint(level)
    elif method in ("bootstrap", "boot"):
        from .bootstrap import bootstrap

        out = bootstrap(res, nsim, seed=seed, n_jobs=n_jobs, progress=progress).confint(level)
    else:
        raise MixedFXError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")
    if which is None:
        return out
    from .profile import _select

    var_names = parameter_names(res)
    keep = _select(which, list(out.index), var_names, list(res.fixef.index))
    return out.loc[[n for n in out.index if n in keep]]
