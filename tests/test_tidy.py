"""tidy() and glance() as broom.mixed, and notebook HTML."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mixedfx
from mixedfx.tidy import TIDY_COLUMNS


@pytest.fixture(scope="module")
def fit():
    return mixedfx.lmm("Reaction ~ Days + (Days | Subject)", mixedfx.datasets.load("sleepstudy"))


def test_tidy_rows_and_names_as_broom_mixed(fit):
    t = fit.tidy()
    assert list(t.columns) == TIDY_COLUMNS
    assert list(t["effect"]) == ["fixed"] * 2 + ["ran_pars"] * 4
    assert list(t["term"]) == ["(Intercept)", "Days", "sd__(Intercept)", "sd__Days",
                               "cor__(Intercept).Days", "sd__Observation"]
    assert list(t["group"][2:]) == ["Subject"] * 3 + ["Residual"]
    np.testing.assert_allclose(t["estimate"][:2], fit.fixef.to_numpy())
    np.testing.assert_allclose(t["std_error"][:2], fit.se.to_numpy())
    np.testing.assert_allclose(t["estimate"][2:], fit.varcorr["sdcor"].to_numpy())
    assert t["conf_low"].isna().all()
    fixed = t[t.effect == "fixed"]
    table = fit.coef_table()  # Satterthwaite, as broom.mixed with lmerTest
    np.testing.assert_allclose(fixed["p_value"], table["p_value"])
    np.testing.assert_allclose(fixed["df"], 17.0, rtol=1e-4)


def test_tidy_wald_and_profile_intervals(fit):
    wald = fit.tidy(conf_int=True)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(wald["conf_low"][:2], fit.fixef - z * fit.se, rtol=1e-10)
    assert wald["conf_low"][2:].isna().all()  # Wald: no intervals for variance parameters
    prof = fit.tidy(conf_int=True, conf_method="profile", effects=("ran_pars",))
    ci = fit.confint(method="profile")
    assert prof["conf_low"].tolist() == pytest.approx(
        ci.loc[["sd_(Intercept)|Subject", "sd_Days|Subject", "cor_Days.(Intercept)|Subject",
                "sigma"]].iloc[:, 0].tolist())


def test_tidy_rejects_unknown_effects(fit):
    with pytest.raises(ValueError, match="unknown effects"):
        fit.tidy(effects=("random",))


def test_glance_one_row(fit):
    g = fit.glance()
    assert g.shape[0] == 1
    row = g.iloc[0]
    assert row["nobs"] == 180 and row["npar"] == 6 and row["df_residual"] == 174
    assert row["loglik"] == pytest.approx(fit.loglik)
    assert row["aic"] == pytest.approx(fit.aic) and row["sigma"] == pytest.approx(fit.sigma)
    assert bool(row["converged"]) and not bool(row["singular"])


def test_html_of_result_and_summary(fit):
    html = fit._repr_html_()
    assert "<table" in html and "Random effects" in html and "Fixed effects" in html
    assert "Reaction ~ Days + (Days | Subject)" in html and "sd__" not in html
    bodies = [part.split("</tbody>")[0] for part in html.split("<tbody>")[1:]]
    assert [b.count("</tr>") for b in bodies] == [1, 4, 2]  # fit, random, fixed rows
    summary = fit.summary()
    assert isinstance(summary, str) and summary == str(fit)
    assert summary._repr_html_().startswith("<pre")
    assert "&lt;" not in summary._repr_html_() or "<" in summary


def test_html_flags_non_convergence(fit):
    from dataclasses import replace

    bad = replace(fit, converged=False, singular=True)
    html = bad._repr_html_()
    assert "did not converge" in html and "singular" in html


def test_glmm_tidy_glance_html():
    cbpp = mixedfx.datasets.load("cbpp")
    res = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial")
    t = res.tidy(conf_int=True)
    assert list(t["term"]) == ["(Intercept)", "period2", "period3", "period4",
                               "sd__(Intercept)"]
    assert np.all(np.isinf(t["df"][:4]))  # z tests
    np.testing.assert_allclose(t["p_value"][:4], res.coef_table()["p_value"])
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(t["conf_high"][:4], res.fixef + z * res.se, rtol=1e-8)
    g = res.glance()
    assert g.loc[0, "nobs"] == 56 and g.loc[0, "loglik"] == pytest.approx(res.loglik)
    assert "Random effects" in res._repr_html_()
    for fit in (res, mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                  cbpp, family="binomial", method="pql")):
        text = fit.summary()
        assert isinstance(text, str) and text.startswith("Generalized linear mixed model")
        assert text._repr_html_().startswith("<pre") and "(Intercept)" in text._repr_html_()


def test_structured_residual_parameters_are_rows(tmp_path):
    orth = mixedfx.datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", orth,
                      correlation=mixedfx.AR1(), variance=mixedfx.VarIdent("Sex"))
    t = res.tidy(conf_int=True)  # no intervals for the structure: NaN, never a crash
    resid = t[t["term"].str.startswith("resid__")]
    assert list(resid["term"]) == [f"resid__{k}" for k in res.residual_params]
    assert (resid["group"] == "Residual").all() and (resid["effect"] == "ran_pars").all()
    np.testing.assert_array_equal(resid["estimate"], list(res.residual_params.values()))
    assert resid["conf_low"].isna().all()
    fixed = t[t["effect"] == "fixed"]
    assert fixed["conf_low"].notna().all() and len(fixed) == 3
    loaded = mixedfx.load(res.save(tmp_path / "ar1.mfx.json"))  # without its model
    assert loaded.tidy().equals(res.tidy())
    html = res._repr_html_()
    assert "Residual structure" in html and "<td>Phi</td>" in html
    assert "Residual structure" not in mixedfx.lmm(
        "distance ~ age + (1 | Subject)", orth)._repr_html_()


def test_ran_vals_rows_are_the_conditional_modes(fit):
    t = fit.tidy(effects=("fixed", "ran_pars", "ran_vals"), conf_int=True)
    assert list(t.columns) == TIDY_COLUMNS[:2] + ["level"] + TIDY_COLUMNS[2:]
    vals = t[t["effect"] == "ran_vals"]
    assert len(vals) == 18 * 2 and t["level"].iloc[0] is None
    days = vals[vals["term"] == "Days"]
    modes, sds = fit.ranef["Subject"]["Days"], fit.ranef_sd["Subject"]["Days"]
    assert list(days["level"]) == [str(v) for v in modes.index]
    np.testing.assert_array_equal(days["estimate"], modes.to_numpy())
    np.testing.assert_array_equal(days["std_error"], sds.to_numpy())
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(days["conf_high"], modes + z * sds, rtol=1e-14)
    alone = fit.tidy(effects="ran_vals")
    assert len(alone) == 36 and alone["conf_low"].isna().all()
    cbpp = mixedfx.datasets.load("cbpp")
    g = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                     family="binomial")
    gv = g.tidy(effects=("ran_vals",), conf_int=True)
    assert len(gv) == 15 and gv["conf_low"].lt(gv["estimate"]).all()


def test_requested_ddf_errors_are_not_hidden():
    orth = mixedfx.datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + (1 | Subject)", orth, correlation=mixedfx.AR1())
    assert np.isfinite(res.tidy()["estimate"]).all()  # default: whatever tests the fit has
    with pytest.raises(mixedfx.MixedFXError):
        res.tidy(ddf="kenward-roger")  # not available for residual structures: said so


def test_glmm_ddf_argument():
    cbpp = mixedfx.datasets.load("cbpp")
    res = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial")
    assert res.tidy(ddf="asymptotic").equals(res.tidy())
    with pytest.raises(mixedfx.DataError, match="tested by z statistics"):
        res.tidy(ddf="satterthwaite")
