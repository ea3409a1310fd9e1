"""Satterthwaite (lmerTest) and Kenward-Roger (pbkrtest) df, t and F tests.

References: tests/reference/ddf_refs.R (unbalanced sleepstudy subset with a factor, ML and
REML, Penicillin crossed) and the balanced cases of shared_refs.R.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from tests.conftest import load_reference

REF = Path(__file__).parent / "reference"
REFS = json.loads((REF / "ddf_refs.json").read_text())


def _values(x) -> np.ndarray:
    return np.array(list(x.values()) if isinstance(x, dict) else np.atleast_1d(x), float)


def _unbalanced() -> pd.DataFrame:
    u = pd.read_csv(REF / "ddf_sleep_unbalanced.csv")
    u["Subject"] = pd.Categorical(u["Subject"].astype(str))
    u["period"] = pd.Categorical(u["period"], categories=["early", "middle", "late"])
    return u


def _fit(name: str):
    ref = REFS[name]
    data = mixedfx.datasets.load("Penicillin") if "penicillin" in name else _unbalanced()
    return mixedfx.lmm(ref["formula"], data, reml=ref["reml"]), ref


@pytest.mark.parametrize("name", list(REFS))
def test_satterthwaite_t_tests_match_lmertest(name):
    res, ref = _fit(name)
    table = res.coef_table()
    np.testing.assert_allclose(table["df"], _values(ref["satterthwaite"]["df"]), rtol=1e-4)
    np.testing.assert_allclose(table["statistic"], _values(ref["satterthwaite"]["t"]),
                               rtol=1e-5)
    np.testing.assert_allclose(table["p_value"], _values(ref["satterthwaite"]["p"]),
                               rtol=1e-3)


@pytest.mark.parametrize("name", [n for n in REFS if "kenward_roger" in REFS[n]])
def test_kenward_roger_df_and_se_match_pbkrtest(name):
    res, ref = _fit(name)
    table = res.coef_table("kenward-roger")
    np.testing.assert_allclose(table["df"], _values(ref["kenward_roger"]["df"]), rtol=1e-4)
    np.testing.assert_allclose(table["std_error"], _values(ref["kenward_roger"]["se"]),
                               rtol=1e-5)
    assert np.all(table["std_error"] >= res.se - 1e-12)  # the adjustment inflates


@pytest.mark.parametrize(("name", "ddf", "key"), [
    (n, d, k) for n in REFS for d, k in (("satterthwaite", "anova_satterthwaite"),
                                         ("kenward-roger", "anova_kenward_roger"))
    if k in REFS[n]])
def test_f_tests_match_lmertest_anova(name, ddf, key):
    res, ref = _fit(name)
    table = res.anova(ddf=ddf)
    assert list(table.index) == ref[key]["terms"]
    np.testing.assert_allclose(table["F"], ref[key]["F"], rtol=1e-5)
    np.testing.assert_array_equal(table["num_df"], ref[key]["num_df"])
    np.testing.assert_allclose(table["den_df"], ref[key]["den_df"], rtol=1e-4)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "pastes_nested"])
def test_balanced_shared_references(name):
    ref = load_reference(name)
    data = mixedfx.datasets.load("sleepstudy" if name.startswith("sleep") else "Pastes")
    res = mixedfx.lmm(ref["formula"], data)
    # the tolerance: within 1e-4 in df (absolute; measured <= 1e-5)
    np.testing.assert_allclose(res.coef_table()["df"], _values(ref["satterthwaite_df"]),
                               rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.coef_table("kenward-roger")["df"],
                               _values(ref["kenward_roger_df"]), rtol=0, atol=1e-4)


def test_kenward_roger_single_df_f_equals_t_squared_with_adjusted_se():
    res, _ = _fit("unbalanced_slopes_reml")
    t = res.coef_table("kenward-roger")
    f = res.anova("kenward-roger")
    # one-df F test of a term: F = scale * t^2 with the adjusted SE; the scale is ~1 here
    assert f.loc["dose", "F"] == pytest.approx(t.loc["dose", "statistic"] ** 2, rel=0.05)
    assert f.loc["dose", "den_df"] == pytest.approx(t.loc["dose", "df"], rel=1e-10)


def test_asymptotic_is_wald():
    res, _ = _fit("unbalanced_slopes_ml")
    table = res.coef_table("asymptotic")
    assert np.all(np.isinf(table["df"]))
    np.testing.assert_allclose(table["std_error"], res.se)


def test_bad_ddf_and_kenward_roger_for_ml():
    res, _ = _fit("unbalanced_slopes_ml")
    with pytest.raises(ValueError, match="unknown ddf"):
        res.coef_table("containment")
    with pytest.raises(mixedfx.DataError, match="REML"):
        res.coef_table("kenward-roger")


def test_summary_shows_satterthwaite_as_lmertest():
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", mixedfx.datasets.load("sleepstudy"))
    text = res.summary()
    assert text.splitlines()[0].endswith("t-tests use Satterthwaite's method")
    assert "Estimate Std. Error     df t value Pr(>|t|)" in text
    assert "3.26e-06 ***" in text and "Signif. codes" in text


def test_docs_examples_run():
    import re

    text = (Path(__file__).parents[1] / "docs" / "inference.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/inference.md", "exec"), namespace)  # noqa: S102
    assert "kr" in namespace
