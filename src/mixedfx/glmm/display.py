"""lme4's ``summary(glmer)`` layout for :class:`~mixedfx.glmm.result.GlmmResult`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..summary import (
    _fmt_table,
    correlation_table,
    fixed_effects_table,
    random_effects_table,
    scaled_residuals_table,
)

_METHOD = {
    "laplace": "Laplace Approximation", "agq": "Adaptive Gauss-Hermite Quadrature",
}


def render_glmm(res) -> str:
    """Render a GLMM result as lme4's ``summary()`` does (z tests on the fixed effects)."""
    if res.method == "agq":
        how = f"Adaptive Gauss-Hermite Quadrature (nAGQ = {res.n_agq})"
    elif res.n_agq == 0:
        how = "Laplace Approximation (nAGQ = 0: fixed effects inside PIRLS)"
    else:
        how = "Laplace Approximation"
    lines = [f"Generalized linear mixed model fit by maximum likelihood ({how}) ['glmmMod']",
             f" Family: {res.family}  ( {res.link} )", f"Formula: {res.formula}"]
    if res.data_name:
        lines.append(f"   Data: {res.data_name}")
    lines.append("")
    rows = [["AIC", "BIC", "logLik", "-2*log(L)", "df.resid"],
            [f"{res.aic:.1f}", f"{res.bic:.1f}", f"{res.loglik:.1f}", f"{res.deviance:.1f}",
             str(res.nobs - res.npar)]]
    lines += _fmt_table(rows, set())
    fam = res.family_object
    mu = res.fitted
    if mu is None:  # out-of-core fit (issue 7): no per-row values in memory
        lines += ["", "Scaled residuals: not held (out-of-core fit)"]
    else:
        pearson = (res.model.y - mu) * np.sqrt(res.model.prior / fam.variance(mu)
                                               / res.dispersion)
        lines += ["", "Scaled residuals: "] + scaled_residuals_table(pearson)
    lines += ["", "Random effects:"] + random_effects_table(res.varcorr)
    groups = ", ".join(f"{g}, {n}" for g, n in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    if res.n_dropped:
        lines.append(f"({res.n_dropped} observations deleted due to missingness)")
    ct = res.coef_table()
    extra = pd.DataFrame({"Pr(>|z|)": ct.p_value})
    lines += ["", "Fixed effects:"] + fixed_effects_table(res.fixef, res.se, "z value", extra)
    corr = correlation_table(res.vcov)
    if corr:
        lines += ["", "Correlation of Fixed Effects:"] + corr
    notes = ["log-likelihood with all normalizing constants (lme4 omits them for nAGQ > 1)"]
    if res.dropped_columns:
        notes.append(f"fixed-effect model matrix is rank deficient so dropping "
                     f"{len(res.dropped_columns)} columns: {', '.join(res.dropped_columns)}")
    if res.singular:
        notes.append("boundary (singular) fit: see the variance components above")
    if not res.converged:
        notes.append(f"optimizer did not converge: {res.optsum.status}")
    lines += [""] + [f"NOTE: {n}" for n in notes]
    return "\n".join(lines)
