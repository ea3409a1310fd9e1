"""Starting values: moment estimates land near the optimum, including covariances."""

from __future__ import annotations

import numpy as np
import pandas as pd

import mixedfx
from mixedfx.lmm import LmmModel
from mixedfx.start import STEP_RANGE, moment_step


def _correlated_slopes(n: int = 40_000, users: int = 2_000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = rng.integers(users, size=n)
    x = rng.normal(size=n)
    cov = np.array([[1.0, -0.3], [-0.3, 0.36]])  # correlation -0.5
    b = rng.multivariate_normal([0.0, 0.0], cov, size=users)
    y = 2.0 + x + b[user, 0] + b[user, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "user": pd.Categorical(user)})


def test_moment_start_estimates_the_covariance():
    data = _correlated_slopes()
    model = LmmModel.from_formula("y ~ x + (1 + x | user)", data)
    start = model.moment_theta()
    res = mixedfx.lmm("y ~ x + (1 + x | user)", data)
    np.testing.assert_allclose(start, res.theta, atol=0.03)
    assert start[1] < -0.2  # the negative covariance is in the start, not zero


def test_moment_step_follows_the_fewest_levels():
    sleep = mixedfx.datasets.load("sleepstudy")
    few = LmmModel.from_formula("Reaction ~ Days + (Days | Subject)", sleep)
    many = LmmModel.from_formula("y ~ x + (1 + x | user)", _correlated_slopes())
    assert moment_step(few.terms) == STEP_RANGE[1]
    assert STEP_RANGE[0] <= moment_step(many.terms) < STEP_RANGE[1]
