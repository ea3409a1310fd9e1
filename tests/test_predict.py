"""Predictions of LMM results against lme4's predict() (tests/reference/predict_refs.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import DataError
from tests.conftest import load_reference

REFS = load_reference("predict_refs")
CASES = {"sleepstudy": "sleepstudy", "sleepstudy_quadratic_zerocorr": "sleepstudy",
         "orthodont_interaction": "Orthodont", "pastes_nested": "Pastes",
         "penicillin_crossed": "Penicillin"}
_FITS: dict = {}


def fit(name: str):
    if name not in _FITS:
        ref = REFS[name]
        _FITS[name] = mixedfx.lmm(ref["formula"], mixedfx.datasets.load(CASES[name]),
                                  reml=ref["reml"])
    return _FITS[name]


@pytest.mark.parametrize("name", list(CASES))
def test_predictions_agree_with_lme4(name):
    ref, res = REFS[name], fit(name)
    newdata = pd.DataFrame(ref["newdata"])
    # lme4's estimates agree with ours to ~1e-6; predictions inherit that
    cond = res.predict(newdata, allow_new_levels=True)
    np.testing.assert_allclose(cond, ref["conditional"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.predict(newdata, kind="fixed"), ref["fixed"], rtol=0,
                               atol=1e-4)
    np.testing.assert_allclose(res.predict(), ref["fitted"], rtol=0, atol=1e-4)


def test_fitted_data_as_newdata_gives_the_fitted_values():
    res = fit("orthodont_interaction")
    data = mixedfx.datasets.load("Orthodont")
    np.testing.assert_allclose(res.predict(data), res.fitted, atol=1e-10)
    np.testing.assert_allclose(res.predict(), res.fitted, atol=1e-10)


def test_marginal_and_link_scale_equal_fixed_for_an_lmm():
    res = fit("sleepstudy")
    nd = pd.DataFrame({"Days": [0.0, 3.0, 7.5], "Subject": [308, 309, 310]})
    fixed = res.predict(nd, kind="fixed")
    np.testing.assert_allclose(res.predict(nd, kind="marginal"), fixed)
    np.testing.assert_allclose(res.predict(nd, kind="marginal", scale="link"), fixed)
    np.testing.assert_allclose(fixed, res.fixef["(Intercept)"] + res.fixef["Days"] * nd.Days)
    cond = res.predict(nd, scale="link")
    np.testing.assert_allclose(cond, res.predict(nd))
    b = res.ranef["Subject"].loc[["308", "309", "310"]].to_numpy()
    np.testing.assert_allclose(cond - fixed, b[:, 0] + b[:, 1] * nd.Days, atol=1e-10)


def test_levels_matched_by_text_and_index_kept():
    res = fit("sleepstudy")
    as_int = pd.DataFrame({"Days": [1, 2], "Subject": [308, 372]}, index=[10, 20])
    as_str = pd.DataFrame({"Days": [1, 2], "Subject": ["308", "372"]}, index=["a", "b"])
    p_int, p_str = res.predict(as_int), res.predict(as_str)
    assert list(p_int.index) == [10, 20] and list(p_str.index) == ["a", "b"]
    np.testing.assert_allclose(p_int.to_numpy(), p_str.to_numpy())


def test_new_levels_refused_with_names_or_predicted_at_population_level():
    res = fit("pastes_nested")
    nd = pd.DataFrame({"batch": ["A", "K"], "cask": ["d", "a"]})
    with pytest.raises(DataError, match=r"cask:batch.*d:A.*a:K.*allow_new_levels"):
        res.predict(nd)
    with pytest.raises(DataError, match=r"'batch': K"):
        res.predict(nd)
    pred = res.predict(nd, allow_new_levels=True)
    # row 0: batch A is known, cask d:A is not; row 1: neither is known
    assert pred.iloc[0] == pytest.approx(res.fixef.iloc[0] + res.ranef["batch"].loc["A"].iloc[0])
    assert pred.iloc[1] == pytest.approx(res.fixef.iloc[0])
    # fixed predictions need no grouping columns at all
    np.testing.assert_allclose(res.predict(pd.DataFrame({"x": [1, 2]}), kind="fixed"),
                               res.fixef.iloc[0])


def test_missing_columns_and_unseen_fixed_levels_are_named():
    res = fit("orthodont_interaction")
    with pytest.raises(DataError, match="lack the column.*Sex"):
        res.predict(pd.DataFrame({"age": [8], "Subject": ["F01"]}))
    with pytest.raises(DataError, match="'Sex'.*Other"):
        res.predict(pd.DataFrame({"age": [8], "Sex": ["Other"], "Subject": ["F01"]}))


def test_rows_with_missing_values_give_nan_and_data_untouched():
    res = fit("sleepstudy")
    nd = pd.DataFrame({"Days": [1.0, np.nan, 3.0], "Subject": ["308", "309", None]})
    before = nd.copy()
    pred = res.predict(nd, kind="conditional")
    assert np.isnan(pred.iloc[1]) and np.isnan(pred.iloc[2]) and np.isfinite(pred.iloc[0])
    pd.testing.assert_frame_equal(nd, before)


def test_offset_required_for_newdata_when_fitted_with_one():
    data = mixedfx.datasets.load("sleepstudy")
    res = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", data, offset=np.full(len(data), 5.0))
    nd = pd.DataFrame({"Days": [2.0], "Subject": ["308"]})
    with pytest.raises(DataError, match="offset"):
        res.predict(nd)
    with_off = res.predict(nd.assign(o=1.0), offset="o")
    assert with_off.iloc[0] == pytest.approx(res.predict(nd, offset=0.0).iloc[0] + 1.0)
    np.testing.assert_allclose(res.predict(), res.fitted)


def test_bad_kind_or_scale():
    res = fit("sleepstudy")
    with pytest.raises(ValueError, match="kind"):
        res.predict(kind="population")
    with pytest.raises(ValueError, match="scale"):
        res.predict(scale="probability")


def test_docs_example_runs():
    """The python blocks of docs/predict.md, in order, with the values the text shows."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "predict.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/predict.md", "exec"), namespace)
    np.testing.assert_allclose(namespace["cond"], [253.663670, 293.854691, 369.481485,
                                                   293.274249], atol=1e-4)
    np.testing.assert_allclose(namespace["table"].to_numpy(),
                               [[0.3082, 0.198, 0.2161], [0.2705, 0.198, 0.2161],
                                [0.1980, 0.198, 0.2161]], atol=1e-4)
    m = namespace["marginal_mean"](namespace["Logit"](), namespace["eta"], v=4.0)
    np.testing.assert_allclose(m, [0.2248, 0.5, 0.7752], atol=1e-4)


def test_models_with_residual_structures_predict():
    orthodont = mixedfx.datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", orthodont,
                      correlation=mixedfx.AR1())
    np.testing.assert_allclose(res.predict(), res.fitted, atol=1e-10)
    new = pd.DataFrame({"age": [8, 10], "Sex": ["Male", "Female"], "Subject": ["M01", "F99"]})
    pred = res.predict(new, allow_new_levels=True)
    b = res.ranef["Subject"].loc["M01"].iloc[0]
    fixed = res.predict(new, kind="fixed")
    assert pred.iloc[0] == pytest.approx(fixed.iloc[0] + b)
    assert pred.iloc[1] == pytest.approx(fixed.iloc[1])
