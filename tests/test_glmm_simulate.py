"""GLMM simulation (lme4's simulate) and parametric bootstrap (bootMer)."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import MixedFXError

REFERENCE = Path(__file__).parent / "reference"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    return mixedfx.glmm(CBPP, mixedfx.datasets.load("cbpp"))


@pytest.fixture(scope="module")
def counts_fit():
    d = pd.read_csv(REFERENCE / "binary_outcomes_seed5.csv")
    return mixedfx.glmm("absences ~ hours + (1 | school)", d.assign(school=d.school.astype(str)),
                        family="poisson")


def test_simulate_binomial_proportions(cbpp_fit):
    sims = cbpp_fit.simulate(5, seed=1)
    assert sims.shape == (cbpp_fit.nobs, 5) and list(sims.columns)[0] == "sim_1"
    size = mixedfx.datasets.load("cbpp")["size"].to_numpy()
    successes = sims.to_numpy() * size[:, None]
    np.testing.assert_allclose(successes, np.round(successes), atol=1e-9)
    assert sims.to_numpy().min() >= 0 and sims.to_numpy().max() <= 1
    again = cbpp_fit.simulate(2, seed=1)  # column j does not depend on nsim
    pd.testing.assert_frame_equal(again, sims.iloc[:, :2])
    assert not sims.equals(cbpp_fit.simulate(5, seed=2))


def test_simulated_poisson_mean_is_the_marginal_mean(counts_fit):
    sims = counts_fit.simulate(400, seed=3).to_numpy()
    assert np.all(sims >= 0) and np.all(sims == np.round(sims))
    marginal = counts_fit.predict(kind="marginal").to_numpy()  # exp(eta + sd^2 / 2)
    # the school effects are shared by a school's rows: average over rows and draws
    assert sims.mean() == pytest.approx(marginal.mean(), rel=0.03)


def test_bootstrap_reproducible_and_named(cbpp_fit):
    boot = cbpp_fit.bootstrap(12, seed=5)
    assert list(boot.replicates.columns) == ["sd_(Intercept)|herd"] + list(cbpp_fit.fixef.index)
    np.testing.assert_allclose(boot.estimates[cbpp_fit.fixef.index], cbpp_fit.fixef)
    assert boot.estimates.iloc[0] == pytest.approx(cbpp_fit.theta[0])
    assert boot.replicates.notna().all().all() and boot.converged.all()
    again = cbpp_fit.bootstrap(12, seed=5)
    pd.testing.assert_frame_equal(boot.replicates, again.replicates)
    ci = boot.confint(level=0.9)
    assert list(ci.index) == list(boot.replicates.columns)
    assert (ci.lower < ci.upper).all()


def test_errors(cbpp_fit):
    with pytest.raises(MixedFXError, match="nsim"):
        cbpp_fit.simulate(0)
    pql = mixedfx.glmm(CBPP, mixedfx.datasets.load("cbpp"), method="pql")
    with pytest.raises(MixedFXError, match="likelihood fit"):
        import_module("mixedfx.glmm.simulate").simulate(pql)
    d = pd.read_csv(REFERENCE / "gamma_sim.csv")
    gam = mixedfx.glmm("y ~ x + (1 | g)", d, family="Gamma", link="log")
    assert (gam.simulate(2, seed=1).to_numpy() > 0).all()
    with pytest.raises(MixedFXError, match="fixed dispersion"):
        gam.bootstrap(3)
