"""Checks before a GLMM fit: separation of the response by indicator columns of X."""

from __future__ import annotations

import numpy as np

from .model import GlmmModel


def separated_terms(model: GlmmModel) -> list[str]:
    """Fixed-effect columns that are 0/1 indicators whose rows all have the response at a
    bound (all failures or all successes for a binomial; all zero counts for counts): their
    maximum-likelihood estimate runs off to +-infinity (complete separation).

    Only indicator columns are checked (a factor's dummies, a 0/1 covariate); the intercept
    is not.
    """
    fam = model.family
    y, a, X = model.y, model.prior, model.X
    bounded_above = fam.name == "binomial"
    out = []
    for j, name in enumerate(model.fixed_names):
        x = X[:, j]
        if name == "(Intercept)" or not np.all((x == 0) | (x == 1)):
            continue
        on = (x == 1) & (a > 0)
        if not on.any() or on.all():
            continue
        successes = float(np.sum(a[on] * y[on]))
        if successes == 0 or (bounded_above and successes == float(np.sum(a[on]))):
            out.append(name)
    return out
