"""Negative binomial GLMM (glmer.nb): theta estimation pieces and the full fit against
lme4 (tests/reference/negbin_refs.R on tests/reference/counts_sim.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixedfx.glmm.negbin import search_theta, theta_ml, theta_score
from tests.conftest import REFERENCE, load_reference

REFS = load_reference("negbin_refs")
DATA = pd.read_csv(REFERENCE / "counts_sim.csv")


def test_theta_ml_matches_mass():
    ref = REFS["theta_ml"]
    theta = theta_ml(DATA.y.to_numpy(), np.asarray(ref["mu"]))
    assert theta == pytest.approx(ref["theta"], rel=1e-6)
    assert theta_score(theta, DATA.y.to_numpy(), np.asarray(ref["mu"]),
                       np.ones(len(DATA))) == pytest.approx(0, abs=1e-8)


def test_theta_ml_without_overdispersion_is_infinite():
    mu = np.full(200, 3.0)
    assert np.isinf(theta_ml(mu.copy(), mu))  # counts equal to their means
    y = np.tile([2.0, 3.0, 4.0], 100)  # underdispersed: variance 2/3 < mean 3
    assert np.isinf(theta_ml(y, np.full(300, 3.0)))


def test_search_maximizes_a_profile():
    # stand-in "refit": the fit at theta is theta itself; its log-likelihood is the negative
    # binomial's at fixed means, so the maximum is theta_ml
    y, mu = DATA.y.to_numpy(float), np.asarray(REFS["theta_ml"]["mu"])

    def loglik(theta):
        return float(np.sum(stats.nbinom.logpmf(y, theta, theta / (theta + mu))))

    calls = []
    found = search_theta(lambda th, prev: calls.append(prev) or th, loglik, theta_start=3.0)
    assert found.theta == pytest.approx(REFS["theta_ml"]["theta"], rel=1e-5)
    assert found.converged and found.evaluations == len(calls)
    assert calls[0] is None and calls[1] is not None  # each refit starts from the last
