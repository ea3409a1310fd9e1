"""LMM fits against lme4 (values in tests/reference/*.json, made by shared_refs.R)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets

from .conftest import load_reference

CASES = {
    "sleepstudy_reml": "sleepstudy",
    "sleepstudy_ml": "sleepstudy",
    "sleepstudy_zerocorr": "sleepstudy",
    "dyestuff_reml": "Dyestuff",
    "dyestuff2_singular": "Dyestuff2",
    "penicillin_crossed": "Penicillin",
    "pastes_nested": "Pastes",
}
_FITS: dict[str, tuple] = {}


def fit(name: str, data: str) -> tuple[mixedfx.LmmResult, dict]:
    if name not in _FITS:
        ref = load_reference(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mixedfx.SingularFitWarning)
            res = mixedfx.lmm(ref["formula"], datasets.load(data), reml=ref["reml"])
        _FITS[name] = (res, ref)
    return _FITS[name]


def assert_rel(actual, expected, rtol, what, atol=0.0):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def varcorr_frame(ref: dict) -> pd.DataFrame:
    return pd.DataFrame(ref["varcorr"])


@pytest.mark.parametrize("name", list(CASES))
def test_estimates_agree_with_lme4(name):
    res, ref = fit(name, CASES[name])
    assert_rel(res.fixef[list(ref["fixef"])], list(ref["fixef"].values()), 1e-5, "fixef")
    assert_rel(res.sigma, ref["sigma"], 1e-5, "sigma")
    assert_rel(res.loglik, ref["loglik"], 1e-5, "loglik")
    assert_rel(res.objective, ref["objective"], 1e-5, "objective")
    assert_rel(res.aic, ref["aic"], 1e-5, "aic")
    assert_rel(res.bic, ref["bic"], 1e-5, "bic")
    assert_rel(res.se[list(ref["se"])], list(ref["se"].values()), 1e-4, "se")
    assert res.nobs == ref["nobs"]
    assert res.ngroups == ref["ngroups"]
    assert res.singular == ref["singular"]
    assert res.converged


@pytest.mark.parametrize("name", list(CASES))
def test_varcorr_agrees_with_lme4(name):
    res, ref = fit(name, CASES[name])
    expected = varcorr_frame(ref)
    got = res.varcorr
    assert list(got.group) == list(expected.group)
    assert list(got.term1.fillna("-")) == list(expected.term1.fillna("-"))
    assert list(got.term2.fillna("-")) == list(expected.term2.fillna("-"))
    # Relative 1e-5; absolute slack of 1e-5 of the group's largest sd for the
    # near-zero correlations and covariances (a relative test is meaningless at 0).
    scale = expected.sdcor.abs().max()
    assert_rel(got.vcov, expected.vcov, 1e-5, "vcov", atol=1e-5 * scale**2 * 1e-2)
    assert_rel(got.sdcor, expected.sdcor, 1e-5, "sdcor", atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_ranef_agree_with_lme4(name):
    res, ref = fit(name, CASES[name])
    r = pd.DataFrame(ref["ranef"])
    for group, sub in r.groupby("group", sort=False):
        modes = res.ranef[group]
        sds = res.ranef_sd[group]
        for term, rows in sub.groupby("term", sort=False):
            got_mode = modes.loc[rows.level.tolist(), term].to_numpy()
            got_sd = sds.loc[rows.level.tolist(), term].to_numpy()
            scale = max(np.abs(rows["mode"]).max(), 1e-8)
            assert_rel(got_mode, rows["mode"], 1e-4, f"mode {group} {term}", atol=1e-4 * scale)
            assert_rel(got_sd, rows["cond_sd"], 1e-4, f"cond sd {group} {term}",
                       atol=1e-10)


def test_theta_in_lme4_order():
    res, ref = fit("pastes_nested", "Pastes")
    assert_rel(res.theta, ref["theta"], 1e-4, "theta")


def test_insteval_ml():
    ref = load_reference("insteval_ml")
    res = mixedfx.lmm(ref["formula"], datasets.load("InstEval"), reml=False)
    assert_rel(res.fixef[list(ref["fixef"])], list(ref["fixef"].values()), 1e-4, "fixef")
    assert_rel(res.se[list(ref["se"])], list(ref["se"].values()), 1e-4, "se")
    assert_rel(res.varcorr.vcov, varcorr_frame(ref).vcov, 1e-4, "vcov")
    assert_rel(res.objective, ref["objective"], 1e-8, "deviance")
    assert_rel(res.theta, ref["theta"], 1e-4, "theta")


def test_to_dict_is_json():
    res, ref = fit("sleepstudy_reml", "sleepstudy")
    d = json.loads(json.dumps(res.to_dict()))
    assert d["fixef"]["Days"] == pytest.approx(ref["fixef"]["Days"], rel=1e-6)
    assert d["varcorr"][-1]["group"] == "Residual"
    assert set(d["ranef"]) == {"Subject"}
    assert d["optsum"]["feval"] > 0


def test_summary_has_lme4_sections():
    res, _ = fit("sleepstudy_reml", "sleepstudy")
    text = res.summary()
    for part in ("REML criterion at convergence: 1743.6", "Random effects:", "Subject",
                 "Fixed effects:", "Correlation of Fixed Effects:", "Number of obs: 180"):
        assert part in text
    ml, _ = fit("sleepstudy_ml", "sleepstudy")
    assert "logLik" in ml.summary() and "df.resid" in ml.summary()


def test_icc_random_intercepts():
    res, ref = fit("penicillin_crossed", "Penicillin")
    vc = varcorr_frame(ref).set_index("group").vcov
    icc = res.icc()
    assert icc["plate"] == pytest.approx(vc["plate"] / vc.sum(), rel=1e-5)
    assert icc["sample"] == pytest.approx(vc["sample"] / vc.sum(), rel=1e-5)
