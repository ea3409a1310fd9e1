"""Type III F tests with interactions, an unbalanced nested design and ML Satterthwaite
against lmerTest and pbkrtest (tests/reference/inference_refs.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.inference.ftests import type3_contrasts

REF = Path(__file__).parent / "reference"
REFS = json.loads((REF / "inference_refs.json").read_text())


def _data(name: str) -> pd.DataFrame:
    if name == "d":
        d = pd.read_csv(REF / "inference_nested.csv")
        d["trt"] = pd.Categorical(d["trt"], categories=["A", "B", "C"])
        d["sex"] = pd.Categorical(d["sex"], categories=["f", "m"])
        d["site"] = d["site"].astype(str)
        return d
    if name == "u":
        u = pd.read_csv(REF / "ddf_sleep_unbalanced.csv")
        u["Subject"] = u["Subject"].astype(str)
        u["period"] = pd.Categorical(u["period"], categories=["early", "middle", "late"])
        return u
    pen = mixedfx.datasets.load("Penicillin").copy()
    pen["half"] = np.where(pen["sample"].astype(str).isin(["A", "B", "C"]), "first", "second")
    return pen


_FITS: dict = {}


def _fit(name: str):
    if name not in _FITS:
        ref = REFS[name]
        data = _data(ref["data"])
        weights = (1.0 + (data["x"] > 2)).to_numpy() if ref["weights"] else None
        _FITS[name] = mixedfx.lmm(ref["formula"], data, reml=ref["reml"], weights=weights)
    return _FITS[name], REFS[name]


def _values(x) -> np.ndarray:
    return np.array(list(x.values()) if isinstance(x, dict) else np.atleast_1d(x), float)


@pytest.mark.parametrize("name", list(REFS))
def test_estimates_and_satterthwaite_t_tests(name):
    res, ref = _fit(name)
    np.testing.assert_allclose(res.fixef, _values(ref["fixef"]), rtol=1e-5, atol=1e-6)
    table = res.coef_table("satterthwaite")
    np.testing.assert_allclose(table["df"], _values(ref["satterthwaite"]["df"]), rtol=1e-4)
    np.testing.assert_allclose(table["statistic"], _values(ref["satterthwaite"]["t"]),
                               rtol=1e-5)


@pytest.mark.parametrize("name", list(REFS))
def test_type3_satterthwaite_anova(name):
    res, ref = _fit(name)
    a, want = res.anova(), ref["anova_satterthwaite"]
    assert list(a.index) == list(np.atleast_1d(want["terms"]))
    np.testing.assert_array_equal(a["num_df"], want["num_df"])
    np.testing.assert_allclose(a["F"], want["F"], rtol=1e-5)
    np.testing.assert_allclose(a["sum_sq"], want["sum_sq"], rtol=1e-5)
    np.testing.assert_allclose(a["den_df"], want["den_df"], rtol=1e-4)
    np.testing.assert_allclose(a["p_value"], want["p"], rtol=1e-3)


@pytest.mark.parametrize("name", [n for n in REFS if "kenward_roger" in REFS[n]])
def test_kenward_roger_t_and_type3_f_tests(name):
    res, ref = _fit(name)
    t = res.coef_table("kenward-roger")
    np.testing.assert_allclose(t["df"], _values(ref["kenward_roger"]["df"]), rtol=1e-4)
    np.testing.assert_allclose(t["std_error"], _values(ref["kenward_roger"]["se"]),
                               rtol=1e-5)
    np.testing.assert_allclose(t["p_value"], _values(ref["kenward_roger"]["p"]), rtol=1e-3)
    a, want = res.anova("kenward-roger"), ref["anova_kenward_roger"]
    assert list(a.index) == list(np.atleast_1d(want["terms"]))
    np.testing.assert_allclose(a["F"], want["F"], rtol=1e-5)
    np.testing.assert_allclose(a["sum_sq"], want["sum_sq"], rtol=1e-5)  # unscaled F
    np.testing.assert_allclose(a["den_df"], want["den_df"], rtol=1e-4)
    np.testing.assert_allclose(a["p_value"], want["p"], rtol=1e-3)


@pytest.mark.parametrize("name", [n for n in REFS if "contest" in REFS[n]])
def test_contrast_test_with_rhs_as_lmertest_contest(name):
    from mixedfx.inference.ftests import contrast_test

    res, ref = _fit(name)
    L = np.zeros((2, len(res.fixef)))
    L[0, 1] = L[1, 2] = 1
    for ddf, key in (("satterthwaite", "satterthwaite"), ("kenward-roger", "kenward_roger")):
        test, want = contrast_test(res, L, ddf=ddf, rhs=[1, 1]), ref["contest"][key]
        assert test["F"] == pytest.approx(want["F"], rel=1e-5)
        assert test["den_df"] == pytest.approx(want["den_df"], rel=1e-4)
        assert test["p_value"] == pytest.approx(want["p"], rel=1e-3)
        np.testing.assert_allclose(test["estimate"], L @ res.fixef.to_numpy() - 1)
    one = contrast_test(res, L[0] - L[1])
    assert one["F"] == pytest.approx(ref["contest"]["one_row"]["F"], rel=1e-5)
    assert one["den_df"] == pytest.approx(ref["contest"]["one_row"]["den_df"], rel=1e-4)
    with pytest.raises(mixedfx.DataError, match="columns"):
        contrast_test(res, [1, 0])
    with pytest.raises(mixedfx.DataError, match="rhs"):
        contrast_test(res, L, rhs=[1, 2, 3])


def test_combined_df_follows_lmertest_rules():
    from mixedfx.inference.satterthwaite import combined_df

    assert combined_df([7.5]) == 7.5
    assert combined_df([10.0, 10.0]) == 10.0
    assert combined_df([1.5, 30.0]) == 2.0
    E = 10 / 8 + 20 / 18
    assert combined_df([10.0, 20.0]) == pytest.approx(2 * E / (E - 2))


@pytest.mark.parametrize("name", [n for n in REFS if "krmodcomp_trt" in REFS[n]])
def test_kenward_roger_two_row_contrast_as_krmodcomp(name):
    from mixedfx.inference.kenward_roger import kenward_roger_parts

    res, ref = _fit(name)
    L = np.zeros((2, len(res.fixef)))
    L[0, 1] = L[1, 2] = 1
    kr = kenward_roger_parts(res)
    test = kr.f_test(L, res.fixef.to_numpy(float))
    ddf, scale = kr.ddf_and_scale(L)
    want = ref["krmodcomp_trt"]
    assert test["F"] == pytest.approx(want["F"], rel=1e-5)
    assert ddf == pytest.approx(want["ddf"], rel=1e-4)
    assert scale == pytest.approx(want["scale"], rel=1e-5)


def test_type3_main_effect_in_interaction_is_averaged_not_at_reference():
    res, _ = _fit("nested_factorial_reml")
    L = type3_contrasts(res)["sex"]
    names = list(res.fixef.index)
    # sex averaged over the three treatments: sexm + (trtB:sexm + trtC:sexm) / 3
    assert L.shape == (1, len(names))
    row = L[0] / L[0, names.index("sexm")]
    assert row[names.index("trtB:sexm")] == pytest.approx(1 / 3)
    assert row[names.index("trtC:sexm")] == pytest.approx(1 / 3)
    # the interaction itself is tested marginally (all its coefficients zero)
    np.testing.assert_array_equal(np.abs(type3_contrasts(res)["trt:sex"]).sum(axis=0) > 0,
                                  [":" in n for n in names])


def test_anova_asymptotic_and_bad_ddf():
    res, _ = _fit("nested_factorial_ml")
    a = res.anova("asymptotic")
    assert np.all(np.isinf(a["den_df"]))
    s = res.anova()
    np.testing.assert_allclose(a["F"], s["F"], rtol=1e-12)  # same statistic, other df
    assert np.all(a["p_value"] <= s["p_value"] + 1e-15)
    with pytest.raises(ValueError, match="unknown ddf"):
        res.anova("between-within")
    with pytest.raises(mixedfx.DataError, match="REML"):
        res.anova("kenward-roger")


def test_residual_structures_fall_back_to_asymptotic_with_a_note():
    o = mixedfx.datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", o, correlation=mixedfx.AR1(),
                      variance=mixedfx.VarIdent("Sex"))
    text = res.summary()
    assert "Satterthwaite's method" not in text.splitlines()[0]
    assert "t tests without df" in text and "coef_table('asymptotic')" in text
    for ddf in ("satterthwaite", "kenward-roger"):
        with pytest.raises(mixedfx.DataError, match="residual-structure"):
            res.coef_table(ddf)
    with pytest.raises(mixedfx.DataError, match="residual-structure"):
        res.anova()
    table = res.coef_table("asymptotic")
    np.testing.assert_allclose(table["std_error"], res.se)
    assert res.anova("asymptotic").loc["Sex", "num_df"] == 1


@pytest.mark.parametrize("reml", [True, False])
def test_analytic_sigma_derivatives_equal_generic_numerical_ones(reml):
    from mixedfx.inference.varpar import VarparFunctions, hessian, jacobian, varpar_derivatives

    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)",
                      mixedfx.datasets.load("sleepstudy"), reml=reml)
    fun = VarparFunctions(res.model)
    varpar = np.append(res.theta, res.sigma)
    H, jac, vcov = varpar_derivatives(fun, res.theta, res.sigma)
    np.testing.assert_allclose(H, hessian(fun.deviance, varpar), rtol=1e-5,
                               atol=1e-5 * np.abs(H).max())
    for a, b in zip(jac, jacobian(fun.vcov_beta, varpar), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(vcov, res.vcov.to_numpy(), rtol=1e-6)


def test_kenward_roger_with_constant_weights_equals_unweighted():
    # weights c rescale sigma^2 only: V = Z G Z' + sigma^2 / c I gives the same df and tests
    data = _data("d")
    f = "y ~ trt + x + (1 | site/batch)"
    plain = mixedfx.lmm(f, data).coef_table("kenward-roger")
    heavy = mixedfx.lmm(f, data, weights=np.full(len(data), 3.0)).coef_table("kenward-roger")
    np.testing.assert_allclose(heavy["df"], plain["df"], rtol=1e-5)
    np.testing.assert_allclose(heavy["std_error"], plain["std_error"], rtol=1e-5)


def test_balanced_one_way_is_exact_for_both_methods():
    # Dyestuff: 6 batches x 5. The mean's variance is estimated by the batch mean square
    # alone, a chi-square on 5 df: both approximations are exact and KR adjusts nothing.
    dye = mixedfx.datasets.load("Dyestuff")
    res = mixedfx.lmm("Yield ~ 1 + (1 | Batch)", dye)
    means = dye.groupby("Batch", observed=True)["Yield"].mean()
    ms_between = 5 * float(np.sum((means - dye["Yield"].mean()) ** 2)) / 5
    t_exact = dye["Yield"].mean() / np.sqrt(ms_between / len(dye))
    for ddf in ("satterthwaite", "kenward-roger"):
        row = res.coef_table(ddf).loc["(Intercept)"]
        assert row["df"] == pytest.approx(5, rel=1e-6)
        assert row["statistic"] == pytest.approx(t_exact, rel=1e-6)
        assert row["std_error"] == pytest.approx(float(res.se.iloc[0]), rel=1e-9)


def test_out_of_core_fit_has_satterthwaite_and_clear_errors_otherwise(tmp_path):
    pytest.importorskip("duckdb")
    from mixedfx.inference.ftests import contrast_test

    sleep = mixedfx.datasets.load("sleepstudy")
    path = tmp_path / "sleep.parquet"
    sleep.to_parquet(path)
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", str(path))
    np.testing.assert_allclose(res.coef_table()["df"], [17, 17], rtol=1e-5)
    assert contrast_test(res, [0, 1])["den_df"] == pytest.approx(17, rel=1e-5)
    with pytest.raises(mixedfx.DataError, match="out-of-core"):
        res.coef_table("kenward-roger")
    with pytest.raises(mixedfx.DataError, match="out-of-core"):
        res.anova()
