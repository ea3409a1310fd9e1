"""PQL against MASS::glmmPQL (tests/reference/cbpp_pql.json from shared_refs.R and
tests/reference/pql_refs.json from pql_refs.R): fixed effects, se, df, random and residual
sd within 1e-3 (agreement is ~1e-6)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedfx
from mixedfx.design import build_design
from mixedfx.errors import DataError
from mixedfx.families import Binomial, Gamma, Poisson
from mixedfx.formula import parse_formula
from mixedfx.glmm.pql import containment_df, fit_pql, grouping_levels, iterate
from mixedfx.marginal import marginal_mean
from tests.conftest import REFERENCE, load_reference


def _check(state, design, ref_fixef, ref_se, ref_df):
    n, p = design.X.shape
    lmm = state.lmm
    np.testing.assert_allclose(lmm.fixef[list(ref_fixef)], list(ref_fixef.values()),
                               rtol=1e-3, atol=1e-4)
    se = lmm.se * np.sqrt(n / (n - p))  # nlme's adjustSigma for ML fits
    np.testing.assert_allclose(se[list(ref_se)], list(ref_se.values()), rtol=1e-3)
    np.testing.assert_array_equal(containment_df(design.X, design.terms), list(ref_df.values()))


def test_cbpp_matches_glmmpql():
    ref = load_reference("cbpp_pql")
    data = mixedfx.datasets.load("cbpp")
    data = data.assign(prop=data.incidence / data["size"])
    design = build_design(parse_formula("prop ~ period + (1 | herd)"), data, weights="size")
    state = iterate("prop ~ period + (1 | herd)", design, Binomial())
    assert state.converged and state.iterations <= 10
    _check(state, design, ref["fixef"], ref["se"], ref["df"])
    sd = state.lmm.varcorr.set_index("group").sdcor
    assert sd["herd"] == pytest.approx(ref["varcorr_sd"]["(Intercept)"], rel=1e-3)
    assert sd["Residual"] == pytest.approx(ref["varcorr_sd"]["Residual"], rel=1e-3)


@pytest.mark.parametrize(("name", "family"), [("poisson_nested", Poisson()),
                                              ("binomial_slope", Binomial()),
                                              ("gamma_log", Gamma("log")),
                                              ("binomial_probit", Binomial("probit"))])
def test_simulated_models_match_glmmpql(name, family):
    ref = load_reference("pql_refs")[name]
    data = pd.read_csv(REFERENCE / "counts_sim.csv")
    design = build_design(parse_formula(ref["formula"]), data)
    state = iterate(ref["formula"], design, family)
    assert state.converged
    _check(state, design, ref["fixef"], ref["se"], ref["df"])
    assert state.lmm.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    np.testing.assert_allclose(state.eta[:12], ref["fitted_link"], rtol=1e-3)
    vc = state.lmm.varcorr
    for group, cov in ref["re_cov"].items():  # nlme names the nested level plot, lme4 plot:site
        rows = vc[vc.group == ("plot:site" if group == "plot" else group)]
        want = np.asarray(cov)
        np.testing.assert_allclose(rows[rows.term2.isna()].vcov, np.diag(want), rtol=1e-3)
        np.testing.assert_allclose(rows[rows.term2.notna()].vcov,
                                   want[np.triu_indices(len(want), 1)], rtol=1e-3)


def test_containment_df_rules():
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"g": np.repeat(np.arange(6), 4), "x": rng.normal(size=24)})
    data["h"] = data.g * 2 + np.tile([0, 0, 1, 1], 6)  # 12 subgroups nested in g
    data["zg"] = data.g.map(dict(enumerate(rng.normal(size=6))))  # constant within g
    data["y"] = rng.normal(size=24)
    design = build_design(parse_formula("y ~ x + zg + (1 | g/h)"), data)
    # strata: g 6, h:g 12 - 6 = 6, residual 24 - 12 = 12; zg at g, x at residual
    np.testing.assert_array_equal(containment_df(design.X, design.terms), [11, 11, 4])
    crossed = build_design(parse_formula("y ~ x + (1 | g) + (1 | r)"),
                           data.assign(r=np.tile(np.arange(4), 6)))
    assert grouping_levels(crossed.terms) is None
    assert np.isnan(containment_df(crossed.X, crossed.terms)).all()


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def test_fit_pql_from_formula_reports_as_glmmpql():
    ref = load_reference("cbpp_pql")
    res = fit_pql(CBPP, mixedfx.datasets.load("cbpp"), "binomial", data_name="cbpp")
    np.testing.assert_allclose(res.fixef[list(ref["fixef"])], list(ref["fixef"].values()),
                               rtol=1e-3)
    np.testing.assert_allclose(res.se[list(ref["se"])], list(ref["se"].values()), rtol=1e-3)
    np.testing.assert_array_equal(res.df[list(ref["df"])], list(ref["df"].values()))
    sd = res.varcorr.set_index("group").sdcor
    assert sd["herd"] == pytest.approx(ref["varcorr_sd"]["(Intercept)"], rel=1e-3)
    assert res.sigma == pytest.approx(ref["varcorr_sd"]["Residual"], rel=1e-3)
    assert np.isnan(res.loglik) and np.isnan(res.aic) and np.isnan(res.deviance)
    assert res.method == "pql" and res.family == "binomial" and res.link == "logit"
    text = res.summary()
    assert "no likelihood" in text and "working residual sd" in text and "DF" in text
    assert "-1.3274" in text
    blob = json.loads(json.dumps(res.to_dict()))
    assert blob["loglik"] is None and blob["df"]["period2"] == 38
    ct = res.coef_table()
    assert ct.p_value["period4"] == pytest.approx(0.003637, rel=1e-3)


def test_pql_predictions():
    data = mixedfx.datasets.load("cbpp")
    res = fit_pql(CBPP, data, Binomial())
    np.testing.assert_allclose(res.predict(), res.fitted)
    np.testing.assert_allclose(res.predict(scale="link"), res.linear_predictor)
    new = pd.DataFrame({"period": [1, 4], "herd": [1, 99]})
    with pytest.raises(DataError, match="herd.*99"):
        res.predict(new)
    fixed = res.predict(new, kind="fixed", scale="link").to_numpy()
    np.testing.assert_allclose(fixed, [res.fixef.iloc[0], res.fixef.iloc[0] + res.fixef.iloc[3]])
    cond = res.predict(new, allow_new_levels=True, scale="link").to_numpy()
    assert cond[0] == pytest.approx(fixed[0] + res.ranef["herd"].iloc[0, 0])
    assert cond[1] == pytest.approx(fixed[1])
    # the marginal mean needs no grouping column: it integrates over the herd effect
    marg = res.predict(new[["period"]], kind="marginal").to_numpy()
    var = res.varcorr.set_index("group").vcov["herd"]
    np.testing.assert_allclose(marg, marginal_mean(Binomial().link, fixed, var))
    assert np.all(marg > special.expit(fixed))  # below 1/2 the population mean is higher


def test_simulated_pql_linear_predictor_matches_glmmpql():
    ref = load_reference("pql_refs")["poisson_nested"]
    res = fit_pql(ref["formula"], pd.read_csv(REFERENCE / "counts_sim.csv"), Poisson())
    np.testing.assert_allclose(res.predict(scale="link")[:12], ref["fitted_link"], rtol=1e-5)
    np.testing.assert_array_equal(res.df, list(ref["df"].values()))


def test_cbind_response_errors():
    data = mixedfx.datasets.load("cbpp")
    with pytest.raises(DataError, match="non-negative"):
        fit_pql("cbind(incidence, incidence - size) ~ period + (1 | herd)", data, Binomial())
    with pytest.raises(DataError, match="nosuch"):
        fit_pql("cbind(incidence, nosuch) ~ period + (1 | herd)", data, Binomial())
    with pytest.raises(ValueError, match="maxiter"):
        fit_pql(CBPP, data, Binomial(), control={"max_iter": 3})


def test_unsettled_iterations_warn():
    with pytest.warns(mixedfx.ConvergenceWarning, match="PQL did not settle in 1"):
        res = fit_pql(CBPP, mixedfx.datasets.load("cbpp"), Binomial(), control={"maxiter": 1})
    assert not res.converged and res.iterations == 1 and "NOT converged" in res.summary()


def test_crossed_factors_fit_with_z_tests():
    data = pd.read_csv(REFERENCE / "counts_sim.csv")
    res = fit_pql("y ~ x + (1 | site) + (1 | rep)", data, Poisson())
    assert res.converged and res.df.isna().all()
    assert "z value" in res.summary() and "no containment df" in res.summary()
    assert set(res.ngroups) == {"site", "rep"}


def test_docs_example_runs():
    """The python blocks of docs/pql.md, in order, with the values the text shows."""
    import re

    text = (REFERENCE.parents[1] / "docs" / "pql.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/pql.md", "exec"), namespace)
    np.testing.assert_allclose(namespace["typical"], [0.2096, 0.0876, 0.0775, 0.0506], atol=1e-4)
    np.testing.assert_allclose(namespace["population"], [0.2234, 0.0978, 0.0869, 0.0574],
                               atol=1e-4)
    assert "-1.3274      0.239  -5.553 38" in namespace["res"].summary()
    np.testing.assert_allclose(namespace["both"].Laplace, [-1.3985, -0.9923, -1.1287, -1.5803],
                               atol=2e-4)


def test_offset_matches_glmmpql():
    ref = load_reference("pql_refs")["cbpp_poisson_offset"]
    data = mixedfx.datasets.load("cbpp")
    offset = np.log(data["size"].to_numpy(float))
    res = mixedfx.glmm(ref["formula"], data, family="poisson", method="pql", offset=offset)
    np.testing.assert_allclose(res.fixef[list(ref["fixef"])], list(ref["fixef"].values()),
                               rtol=1e-3)
    np.testing.assert_allclose(res.se[list(ref["se"])], list(ref["se"].values()), rtol=1e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    assert res.varcorr.vcov.iloc[0] == pytest.approx(ref["re_cov"]["herd"][0][0], rel=1e-3)
    # lme keeps offset(log(size)) in its formula: its fitted values include the offset
    np.testing.assert_allclose(res.linear_predictor[:12], ref["fitted_link"], rtol=1e-4)
