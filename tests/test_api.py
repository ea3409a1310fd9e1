"""Behaviour of the public API beyond the reference values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fitted(sleep):
    return mixedfx.lmm(FORMULA, sleep)


def test_data_frame_not_modified(sleep):
    before = sleep.copy(deep=True)
    mixedfx.lmm("Reaction ~ Days + (Days || Subject)", sleep, weights=np.ones(len(sleep)))
    pd.testing.assert_frame_equal(sleep, before)


def test_polars_input_matches_pandas(sleep, fitted):
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(sleep.assign(Subject=sleep.Subject.astype(str)))
    res = mixedfx.lmm(FORMULA, frame)
    assert res.objective == pytest.approx(fitted.objective, rel=1e-10)
    np.testing.assert_allclose(res.fixef.to_numpy(), fitted.fixef.to_numpy(), rtol=1e-8)


def test_result_is_frozen(fitted):
    with pytest.raises(AttributeError):
        fitted.sigma = 1.0


def test_fitted_plus_residuals_is_response(sleep, fitted):
    np.testing.assert_allclose(fitted.fitted + fitted.residuals, sleep.Reaction.to_numpy())
    # conditional fitted values: X beta + Z b for subject 308
    b = fitted.ranef["Subject"].loc["308"]
    days = sleep.Days[sleep.Subject == 308].to_numpy()
    expect = (fitted.fixef["(Intercept)"] + b["(Intercept)"]
              + (fitted.fixef["Days"] + b["Days"]) * days)
    np.testing.assert_allclose(fitted.fitted[: len(days)], expect)


def test_constant_weights_scale_sigma(sleep, fitted):
    """Weights k for every row: same fixef, residual variance sigma^2 / k per row."""
    res = mixedfx.lmm(FORMULA, sleep, weights=np.full(len(sleep), 4.0))
    np.testing.assert_allclose(res.fixef, fitted.fixef, rtol=1e-6)
    assert res.sigma == pytest.approx(2 * fitted.sigma, rel=1e-6)
    np.testing.assert_allclose(res.theta, fitted.theta / 2, rtol=1e-4)
    # the same distribution reparameterized: the likelihood (with its -sum(log w)) is unchanged
    assert res.objective == pytest.approx(fitted.objective, rel=1e-9)


def test_offset_equals_shifted_response(sleep, fitted):
    off = np.linspace(-5, 5, len(sleep))
    res = mixedfx.lmm(FORMULA, sleep, offset=off)
    shifted = mixedfx.lmm(FORMULA, sleep.assign(Reaction=sleep.Reaction - off))
    np.testing.assert_allclose(res.fixef, shifted.fixef, rtol=1e-8)
    assert res.objective == pytest.approx(shifted.objective, rel=1e-10)
    np.testing.assert_allclose(res.fitted - off, shifted.fitted, rtol=1e-7)


def test_weights_and_offset_by_column_name(sleep):
    df = sleep.assign(w=np.where(sleep.Days > 4, 2.0, 1.0), o=0.5 * sleep.Days)
    by_name = mixedfx.lmm(FORMULA, df, weights="w", offset="o")
    by_vector = mixedfx.lmm(FORMULA, df, weights=df.w.to_numpy(), offset=df.o.to_numpy())
    assert by_name.objective == pytest.approx(by_vector.objective, rel=1e-12)
    assert by_name.weights_used and "Weights" in by_name.summary()


def test_categorical_term_names_as_r(sleep):
    df = sleep.assign(period=pd.Categorical(np.where(sleep.Days < 5, "early", "late")))
    res = mixedfx.lmm("Reaction ~ Days * period + (1 | Subject)", df)
    assert list(res.fixef.index) == ["(Intercept)", "Days", "periodlate", "Days:periodlate"]


def test_categorical_inside_random_term(sleep):
    df = sleep.assign(period=np.where(sleep.Days < 5, "early", "late"))
    res = mixedfx.lmm("Reaction ~ period + (period | Subject)", df)
    assert list(res.ranef["Subject"].columns) == ["(Intercept)", "periodlate"]
    assert res.varcorr.shape[0] == 4


def test_transformations_in_fixed_part(sleep):
    res = mixedfx.lmm("np.log(Reaction) ~ np.sqrt(Days) + (1 | Subject)", sleep)
    assert "np.sqrt(Days)" in res.fixef.index
    assert res.converged


@pytest.mark.filterwarnings("ignore::mixedfx.SingularFitWarning")
def test_zero_intercept_forms_agree(sleep):
    a = mixedfx.lmm("Reaction ~ 0 + Days + (0 + Days | Subject)", sleep)
    b = mixedfx.lmm("Reaction ~ Days - 1 + (Days - 1 | Subject)", sleep)
    assert list(a.fixef.index) == ["Days"]
    assert a.objective == pytest.approx(b.objective, rel=1e-12)


def test_nested_slash_equals_explicit_terms():
    pastes = datasets.load("Pastes")
    a = mixedfx.lmm("strength ~ 1 + (1 | batch/cask)", pastes)
    b = mixedfx.lmm("strength ~ 1 + (1 | batch) + (1 | cask:batch)", pastes)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert set(a.ngroups) == {"batch", "cask:batch"}


def test_grouping_column_of_any_dtype(sleep):
    as_int = sleep.assign(Subject=sleep.Subject.astype(int))
    as_float = sleep.assign(Subject=sleep.Subject.astype(float))
    a, b = mixedfx.lmm(FORMULA, as_int), mixedfx.lmm(FORMULA, as_float)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    assert a.ngroups == {"Subject": 18}


def test_optsum_record(fitted):
    o = fitted.optsum
    assert o.feval > 10 and o.converged and o.seconds > 0
    assert o.fmin == pytest.approx(fitted.objective)


def test_bobyqa_and_newuoa_agree(sleep, fitted):
    res = mixedfx.lmm(FORMULA, sleep, optimizer="bobyqa")
    assert res.objective == pytest.approx(fitted.objective, abs=1e-6)


def test_reml_deviance_is_ml_deviance_at_reml_estimates(fitted):
    # -2 log L(theta, beta, sigma) under ML at the REML estimates is above the ML optimum
    ml = mixedfx.lmm(FORMULA, datasets.load("sleepstudy"), reml=False)
    assert fitted.deviance >= ml.objective - 1e-8
    assert fitted.deviance == pytest.approx(ml.objective, rel=1e-3)


def test_unused_categorical_levels_are_dropped():
    data = mixedfx.datasets.load("sleepstudy")
    first = data.Subject.cat.categories[0]
    sub = data[data.Subject != first].copy()
    sub["Subject"] = sub["Subject"].cat.add_categories([999999])
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sub)
    assert res.ngroups == {"Subject": 17}
    assert str(first) not in res.ranef["Subject"].index
    assert "999999" not in res.ranef["Subject"].index
    assert sub.Subject.cat.categories[-1] == 999999  # the caller's frame is untouched


def test_r_functions_in_formulas_match_precomputed_columns():
    """R's spelling (sin, cos, pi, log, I(x^2)) fits the same model as precomputed columns."""
    ovary = mixedfx.datasets.load("Ovary")
    r_style = mixedfx.lmm("follicles ~ sin(2*pi*Time) + cos(2*pi*Time) + (1 | Mare)", ovary)
    pre = ovary.assign(s=np.sin(2 * np.pi * ovary["Time"]), c=np.cos(2 * np.pi * ovary["Time"]))
    plain = mixedfx.lmm("follicles ~ s + c + (1 | Mare)", pre)
    assert list(r_style.fixef.index) == ["(Intercept)", "sin(2 * pi * Time)",
                                         "cos(2 * pi * Time)"]
    np.testing.assert_allclose(r_style.fixef.to_numpy(), plain.fixef.to_numpy(), rtol=1e-10)
    assert r_style.loglik == pytest.approx(plain.loglik, rel=1e-12)

    sleep = mixedfx.datasets.load("sleepstudy")
    res = mixedfx.lmm("Reaction ~ Days + I(Days^2) + log(Days + 1) + (1 | Subject)", sleep)
    assert list(res.fixef.index) == ["(Intercept)", "Days", "I(Days^2)", "log(Days + 1)"]
    manual = sleep.assign(d2=sleep["Days"] ** 2, ld=np.log(sleep["Days"] + 1))
    ref = mixedfx.lmm("Reaction ~ Days + d2 + ld + (1 | Subject)", manual)
    np.testing.assert_allclose(res.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)


def test_model_frame_does_not_follow_later_changes_to_the_data():
    sleep = mixedfx.datasets.load("sleepstudy")
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    before = res.model.design.frame["Reaction"].to_numpy().copy()
    sleep.loc[0, "Reaction"] = -1.0
    np.testing.assert_array_equal(res.model.design.frame["Reaction"].to_numpy(), before)
