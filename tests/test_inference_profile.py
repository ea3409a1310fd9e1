"""Likelihood profiles and confidence intervals against lme4's profile / confint."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx
from mixedfx import datasets
from mixedfx.errors import MixedFXError
from mixedfx.inference.parameters import SdCorScale, psd_cholesky
from tests.conftest import load_reference

CASES = {
    "sleepstudy_reml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "dyestuff_reml": ("Dyestuff", "Yield ~ 1 + (1 | Batch)"),
}


@pytest.fixture(scope="module")
def sleep_fit():
    return mixedfx.lmm(CASES["sleepstudy_reml"][1], datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def sleep_profile(sleep_fit):
    return sleep_fit.profile()


def _check_against_lme4(name, ci):
    ref = load_reference(name)["profile_ci"]
    assert list(ci.index) == ref["names"]
    for row, lo, hi in zip(ref["names"], ref["lower"], ref["upper"], strict=True):
        width = hi - lo
        assert abs(ci.loc[row, "lower"] - lo) < 1e-3 * width, row
        assert abs(ci.loc[row, "upper"] - hi) < 1e-3 * width, row


def test_sleepstudy_profile_ci_matches_lme4(sleep_profile):
    _check_against_lme4("sleepstudy_reml", sleep_profile.confint())


def test_dyestuff_profile_ci_matches_lme4():
    data, formula = CASES["dyestuff_reml"]
    res = mixedfx.lmm(formula, datasets.load(data))
    _check_against_lme4("dyestuff_reml", res.confint(method="profile"))


def test_traces_are_signed_root_deviances(sleep_profile):
    ml = load_reference("sleepstudy_ml")
    assert sleep_profile.refitted
    assert sleep_profile.base_deviance == pytest.approx(ml["objective"], rel=1e-9)
    est = sleep_profile.estimates
    assert est["sigma"] == pytest.approx(ml["sigma"], rel=1e-5)
    assert est["Days"] == pytest.approx(ml["fixef"]["Days"], rel=1e-6)
    cutoff = np.sqrt(stats.chi2.ppf(0.99, 6))
    for name, tr in sleep_profile.traces.items():
        zeta = tr["zeta"].to_numpy()
        assert np.all(np.diff(zeta) > 0), name  # increasing in the parameter
        at = np.argmin(np.abs(tr[name].to_numpy() - est[name]))
        assert zeta[at] == pytest.approx(0, abs=1e-4)
        x = tr[name].to_numpy()  # each side reaches the cutoff or the parameter's bound
        assert zeta.min() < -cutoff or x.min() == sleep_profile.lower[name], name
        assert zeta.max() > cutoff or x.max() == sleep_profile.upper[name], name
    assert sleep_profile.traces["cor_Days.(Intercept)|Subject"].iloc[-1, 2] == 1.0
    # the fixed effect's trace: other parameters re-optimized, beta_j held at each value
    tr = sleep_profile.traces["Days"]
    assert tr["sigma"].min() < est["sigma"] < tr["sigma"].max()
    long = sleep_profile.to_frame()
    assert set(long.parameter) == set(sleep_profile.traces)
    d = json.loads(json.dumps(sleep_profile.to_dict()))
    assert d["traces"]["Days"]["zeta"] == pytest.approx(list(tr["zeta"]))
    assert "ML refit of a REML fit" in repr(sleep_profile)


def test_profile_zeta_is_the_likelihood_ratio(sleep_fit, sleep_profile):
    """At one point of the Days trace, zeta^2 equals the LRT of the model with Days fixed."""
    tr = sleep_profile.traces["Days"]
    row = tr.iloc[-3]
    sleep = datasets.load("sleepstudy")
    offset = row["Days"] * sleep.Days.to_numpy()
    fixed = mixedfx.lmm("Reaction ~ 1 + (Days | Subject)", sleep, reml=False, offset=offset)
    assert row["zeta"] ** 2 == pytest.approx(fixed.objective - sleep_profile.base_deviance,
                                             rel=1e-5)


def test_which_selects(sleep_fit):
    prof = sleep_fit.profile(which="beta_")
    assert list(prof.traces) == ["(Intercept)", "Days"]
    with pytest.raises(MixedFXError, match="unknown parameter 'Dayz'"):
        sleep_fit.profile(which=["Dayz"])


def test_singular_fit_profile_is_one_sided():
    res = mixedfx.lmm("Yield ~ 1 + (1 | Batch)", datasets.load("Dyestuff2"))
    assert res.singular
    prof = res.profile()
    assert any("singular" in n for n in prof.notes)
    tr = prof.traces["sd_(Intercept)|Batch"]
    assert tr["sd_(Intercept)|Batch"].min() == 0.0 and tr["zeta"].min() == 0.0
    ci = prof.confint()
    assert ci.loc["sd_(Intercept)|Batch", "lower"] == 0.0
    upper = ci.loc["sd_(Intercept)|Batch", "upper"]
    assert 1.0 < upper < 5.0  # lme4: 2.084
    assert np.all(np.isfinite(ci.to_numpy()))


def test_wald_intervals(sleep_fit):
    ci = sleep_fit.confint(method="wald", level=0.9)
    ref = load_reference("sleepstudy_reml")["profile_ci"]["names"]
    assert list(ci.index) == ref
    assert ci.iloc[:4].isna().all().all()
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(ci.loc["Days"], sleep_fit.fixef["Days"]
                               + np.array([-z, z]) * sleep_fit.se["Days"], rtol=1e-12)


def test_bad_arguments(sleep_fit):
    with pytest.raises(MixedFXError, match="unknown method 'lrt'"):
        sleep_fit.confint(method="lrt")
    with pytest.raises(MixedFXError, match="level"):
        sleep_fit.confint(method="wald", level=95)


def test_residual_structure_profile_refused():
    res = mixedfx.lmm("distance ~ age + (1 | Subject)", datasets.load("Orthodont"),
                      variance=mixedfx.VarIdent("Sex"))
    with pytest.raises(MixedFXError, match="bootstrap"):
        res.profile()


def test_sdcor_scale_round_trip():
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    scale = SdCorScale(res.model.terms)
    par = scale.from_theta(res.theta, res.sigma)
    np.testing.assert_allclose(scale.to_theta(par), res.theta, rtol=1e-12)
    vc = res.varcorr
    np.testing.assert_allclose(par[:3], vc.sdcor.to_numpy()[[0, 2, 1]], rtol=1e-10)
    assert scale.to_theta(np.array([1.0, 1.5, 1.0, 1.0])) is None  # |cor| > 1
    C = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.1], [0.2, 0.1, 1.0]])
    np.testing.assert_allclose(psd_cholesky(C), np.linalg.cholesky(C), atol=1e-14)
    L = psd_cholesky(np.ones((2, 2)))  # correlation 1: semi-definite
    np.testing.assert_allclose(L @ L.T, np.ones((2, 2)))
    assert psd_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])) is None


def test_profile_of_a_boundary_correlation_and_without_fixed_effects():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 8)
    x = np.tile(np.arange(8.0), 12)
    y = 1 + 0.3 * x + rng.normal(0, 1, 12)[g] + rng.normal(0, 1, len(g))
    data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mixedfx.lmm("y ~ x + (x | g)", data)  # slope variance ~0, correlation -1
        ci = res.profile().confint()
    assert res.singular
    assert np.all(np.isfinite(ci.to_numpy()))
    assert ci.loc["sd_x|g", "lower"] == 0.0
    assert -1.0 <= ci.loc["cor_x.(Intercept)|g", "lower"] < ci.loc["cor_x.(Intercept)|g",
                                                                     "upper"] <= 1.0
    no_beta = mixedfx.lmm("y ~ 0 + (1 | g)", data).profile()
    assert list(no_beta.traces) == ["sd_(Intercept)|g", "sigma"]
    assert np.all(np.isfinite(no_beta.confint().to_numpy()))


def test_confint_which(sleep_fit):
    ci = sleep_fit.confint(method="wald", which="beta_")
    assert list(ci.index) == ["(Intercept)", "Days"]
    ci = sleep_fit.confint(method="profile", which=["sigma", "Days"])
    assert list(ci.index) == ["sigma", "Days"]
    ref = load_reference("sleepstudy_reml")["profile_ci"]
    assert ci.loc["sigma", "lower"] == pytest.approx(ref["lower"][3], rel=1e-5)
