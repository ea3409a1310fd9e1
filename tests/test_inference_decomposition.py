"""Sequential ANOVA against R's anova(lm(...)) and the mixed model's variance decomposition."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets
from mixedfx.errors import DataError
from tests.conftest import REFERENCE, load_reference

DOCS = Path(__file__).parent.parent / "docs" / "decomposition.md"

# mixedfx formula -> key of the R reference (R formula in the JSON)
CASES = {
    "ab": "y ~ x + (1 | a) + (1 | b)",
    "ba": "y ~ x + (1 | b) + (1 | a)",
    "slope": "y ~ x + (x | a) + (1 | b)",
    "nested": "y ~ 1 + (1 | a/b)",
    "factor": "y ~ x * f + (1 | a)",
}


@pytest.fixture(scope="module")
def crossed() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "decomposition_crossed.csv")


@pytest.fixture(scope="module")
def refs() -> dict:
    return load_reference("decomposition_refs")


@pytest.mark.parametrize("case", list(CASES))
def test_anova_table_matches_r(case, crossed, refs):
    ref = refs["anova"][case]
    got = mixedfx.anova_table(CASES[case], crossed)
    assert len(got) == len(ref["terms"])
    if case != "nested":  # R writes a:b for the nested term; lme4 (and mixedfx) b:a
        assert list(got.index) == ref["terms"]
    np.testing.assert_array_equal(got.df.to_numpy(), ref["df"])
    for col in ("sum_sq", "mean_sq"):
        np.testing.assert_allclose(got[col].to_numpy(), ref[col], rtol=1e-8, err_msg=col)
    for col in ("F", "p_value"):
        expected = np.array([np.nan if v is None else v for v in ref[col]], dtype=float)
        np.testing.assert_allclose(got[col].to_numpy(), expected, rtol=1e-8, err_msg=col)


def test_order_changes_anova_but_not_the_mixed_model(crossed, refs):
    ab = mixedfx.anova_table(CASES["ab"], crossed)
    ba = mixedfx.anova_table(CASES["ba"], crossed)
    assert abs(ab.loc["a", "sum_sq"] - ba.loc["a", "sum_sq"]) > 50  # unbalanced: order matters
    assert ab.loc["Residuals", "sum_sq"] == pytest.approx(ba.loc["Residuals", "sum_sq"])
    vab = mixedfx.lmm(CASES["ab"], crossed).variance_decomposition()
    vba = mixedfx.lmm(CASES["ba"], crossed).variance_decomposition()
    key = ["group", "term"]
    a = vab.table.set_index(key).variance
    b = vba.table.set_index(key).variance.loc[a.index]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5)
    ref = refs["lmer"]["ab"]
    lme4 = pd.Series(ref["vcov"], index=ref["group"])
    got = vab.table.set_index("group").variance
    np.testing.assert_allclose(got.loc[lme4.index].to_numpy(), lme4.to_numpy(), rtol=1e-5)


def test_variance_decomposition_shares(crossed):
    res = mixedfx.lmm(CASES["ab"], crossed)
    dec = res.variance_decomposition()
    t = dec.table
    assert list(t.group) == list(res.varcorr.group)
    assert t.share.sum() == pytest.approx(1.0)
    assert dec.total == pytest.approx(res.varcorr.vcov.sum())
    pd.testing.assert_series_equal(dec.icc, res.icc(), check_names=False, check_index_type=False)
    json.dumps(dec.to_dict())
    assert "Residual" in str(dec)


def test_random_slope_variance_has_no_share():
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    t = res.variance_decomposition().table
    assert list(t.term) == ["(Intercept)", "Days", ""]
    assert np.isnan(t.share[1])
    assert t.share[0] == pytest.approx(612.0897 / (612.0897 + 654.9410), rel=1e-5)


def test_anova_table_bad_input(crossed):
    with pytest.raises(DataError, match="column 'z'"):
        mixedfx.anova_table("y ~ z + (1 | a)", crossed)
    before = crossed.copy()
    mixedfx.anova_table(CASES["slope"], crossed)
    pd.testing.assert_frame_equal(crossed, before)


def test_docs_example_runs():
    """The runnable example of docs/decomposition.md (every python block, in order)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(DOCS), "exec"), namespace)
    assert namespace["ss_a_first"] != pytest.approx(namespace["ss_a_second"], rel=0.05)
    np.testing.assert_allclose(namespace["components_ab"], namespace["components_ba"],
                               rtol=1e-5)


def test_balanced_data_anova_and_reml_agree():
    """Balanced crossed data (Penicillin): the ANOVA method-of-moments components equal the
    REML ones, as docs/decomposition.md says."""
    pen = datasets.load("Penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    ms = mixedfx.anova_table(formula, pen).mean_sq
    dec = mixedfx.lmm(formula, pen).variance_decomposition().table.set_index("group")
    assert dec.variance["plate"] == pytest.approx((ms["plate"] - ms["Residuals"]) / 6, rel=1e-5)
    assert dec.variance["sample"] == pytest.approx((ms["sample"] - ms["Residuals"]) / 24,
                                                   rel=1e-5)
    assert dec.variance["Residual"] == pytest.approx(ms["Residuals"], rel=1e-5)
