"""GLMM confidence intervals: profile (against lme4's confint of profile) and Wald."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import MixedFXError
from tests.conftest import load_reference

REFERENCE = Path(__file__).parent / "reference"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    return mixedfx.glmm(CBPP, mixedfx.datasets.load("cbpp"))


def _reference(key: str) -> pd.DataFrame:
    ref = load_reference("glmm_confint")[key]
    return pd.DataFrame({"lower": ref["lower"], "upper": ref["upper"]}, index=ref["names"])


def test_profile_cbpp_matches_lme4(cbpp_fit):
    # lme4 interpolates zeta with a spline on a grid (delta 0.1): ends agree to ~1e-4
    ref = _reference("cbpp")
    ci = cbpp_fit.confint()
    assert list(ci.index) == list(ref.index)
    np.testing.assert_allclose(ci.to_numpy(), ref.to_numpy(), atol=5e-4)


def test_profile_poisson_matches_lme4():
    d = pd.read_csv(REFERENCE / "binary_outcomes_seed5.csv")
    res = mixedfx.glmm("absences ~ hours + (1 | school)", d.assign(school=d.school.astype(str)),
                       family="poisson")
    ref = _reference("counts")
    ci = res.confint()
    assert list(ci.index) == list(ref.index)
    np.testing.assert_allclose(ci.to_numpy(), ref.to_numpy(), atol=5e-4)


def test_profile_vector_term_matches_lme4():
    # sd, correlation and sd of (1 + x | g): the profile runs on lme4's sd/cor scale
    d = pd.read_csv(REFERENCE / "counts_core.csv").assign(g=lambda f: f.g.astype(str))
    res = mixedfx.glmm("y ~ x + (1 + x | g)", d, family="poisson")
    ref = _reference("slopes")
    ci = res.confint()
    assert list(ci.index) == list(ref.index)
    np.testing.assert_allclose(ci.to_numpy(), ref.to_numpy(), atol=5e-4)


def test_profile_contains_estimates_and_is_wider_than_nothing(cbpp_fit):
    ci = cbpp_fit.confint(which="beta_", level=0.9)
    est = cbpp_fit.fixef
    assert list(ci.index) == list(est.index)
    assert np.all(ci.lower < est) and np.all(est < ci.upper)
    wide = cbpp_fit.confint(which=["period2"], level=0.99)
    assert wide.loc["period2", "lower"] < ci.loc["period2", "lower"]


def test_wald(cbpp_fit):
    ci = cbpp_fit.confint(method="wald")
    assert np.isnan(ci.iloc[0]).all()  # variance parameters: NaN, as lme4
    se, est = cbpp_fit.se, cbpp_fit.fixef
    np.testing.assert_allclose(ci.loc[est.index, "upper"], est + 1.959963984540054 * se)


def test_errors(cbpp_fit):
    with pytest.raises(MixedFXError, match="unknown method"):
        cbpp_fit.confint(method="jackknife")
    with pytest.raises(MixedFXError, match="level"):
        cbpp_fit.confint(level=95)
    with pytest.raises(MixedFXError, match="unknown parameter"):
        cbpp_fit.confint(which=["nope"])
    d = pd.read_csv(REFERENCE / "gamma_sim.csv")
    gam = mixedfx.glmm("y ~ x + (1 | g)", d, family="Gamma", link="log")
    with pytest.raises(MixedFXError, match="fixed dispersion"):
        gam.confint()
    assert np.isfinite(gam.confint(method="wald").loc["x"]).all()


def test_bootstrap_intervals(cbpp_fit):
    ci = cbpp_fit.confint(method="bootstrap", nsim=10, seed=1, which="beta_")
    assert list(ci.index) == list(cbpp_fit.fixef.index) and (ci.lower < ci.upper).all()


def test_tidy_uses_glmm_intervals(cbpp_fit):
    table = cbpp_fit.tidy(conf_int=True, conf_method="profile")
    ci = cbpp_fit.confint()
    np.testing.assert_allclose(table.conf_low.to_numpy(float)[:4],
                               ci.loc[list(cbpp_fit.fixef.index), "lower"].to_numpy())
    assert table.conf_low.iloc[4] == pytest.approx(ci.iloc[0, 0])  # sd__(Intercept)
