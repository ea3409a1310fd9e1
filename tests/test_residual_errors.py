"""Bad input to residual structures: clear errors naming the column, level or value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import DataError


@pytest.fixture
def panel() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(12), 6)
    t = np.tile(np.arange(6), 12)
    return pd.DataFrame({"y": rng.normal(size=72) + subj * 0.1, "x": rng.normal(size=72),
                         "subj": subj, "t": t, "site": np.where(subj < 6, "A", "B"),
                         "g": np.tile(["p", "q", "r"], 24)})


def test_duplicate_times_within_a_group(panel):
    panel.loc[3, "t"] = 2  # subject 0 now has time 2 twice
    with pytest.raises(DataError, match=r"time column 't' has duplicate values.*'subj'"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.AR1("subj", time="t"))
    with pytest.raises(DataError, match="duplicate"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.CAR1("subj", time="t"))


def test_unknown_group_column(panel):
    with pytest.raises(DataError, match=r"AR1: column 'subject' is not in the data"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.AR1(group="subject"))
    with pytest.raises(DataError, match=r"CompSymm: column 'nope'"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.CompSymm(group="nope"))
    with pytest.raises(DataError, match=r"VarIdent: column 'sex'"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.VarIdent("sex"))
    with pytest.raises(DataError, match=r"column 'time'"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.AR1("subj", time="time"))


def test_varident_level_with_one_observation(panel):
    panel.loc[0, "g"] = "lonely"
    with pytest.raises(DataError, match=r"level 'lonely' of column 'g' has one observation"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.VarIdent("g"))


def test_varident_single_level_and_unknown_reference(panel):
    panel["one"] = "z"
    with pytest.raises(DataError, match="single level"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.VarIdent("one"))
    with pytest.raises(DataError, match=r"reference level 'w' is not a level of 'g'"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.VarIdent("g", reference="w"))


def test_ar1_needs_integer_times(panel):
    panel["t"] = panel.t * 0.5
    with pytest.raises(DataError, match=r"must hold integers.*CAR1"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.AR1("subj", time="t"))


def test_car1_needs_a_time_column(panel):
    with pytest.raises(DataError, match="give time="):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.CAR1("subj"))


def test_group_needed_when_the_model_has_several_factors(panel):
    with pytest.raises(DataError, match="give group="):
        mixedfx.lmm("y ~ x + (1 | subj) + (1 | site)", panel, correlation=mixedfx.AR1())


def test_wrong_kind_of_structure(panel):
    with pytest.raises(TypeError, match="correlation="):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation="AR1")
    with pytest.raises(TypeError, match="correlation structure"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.VarIdent("g"))
    with pytest.raises(TypeError, match="variance functions"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.AR1("subj"))
    with pytest.raises(TypeError, match="variance="):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=3)


def test_varpower_zero_covariate(panel):
    with pytest.raises(DataError, match=r"VarPower: covariate 't' has zero values"):
        mixedfx.lmm("y ~ x + (1 | subj)", panel, variance=mixedfx.VarPower("t"))


def test_missing_values_in_structure_columns_are_dropped(panel):
    panel["t"] = panel.t.astype(float)
    panel.loc[[5, 11], "t"] = np.nan
    with pytest.warns(mixedfx.MissingDataWarning, match="2 row"):
        res = mixedfx.lmm("y ~ x + (1 | subj)", panel,
                          correlation=mixedfx.AR1("subj", time="t"))
    assert res.nobs == 70 and res.n_dropped == 2
    ref = mixedfx.lmm("y ~ x + (1 | subj)", panel.dropna().reset_index(drop=True),
                      correlation=mixedfx.AR1("subj", time="t"))
    assert res.loglik == pytest.approx(ref.loglik, abs=1e-9)
    assert len(res.fitted) == 70


def test_caller_data_not_modified(panel):
    before = panel.copy()
    mixedfx.lmm("y ~ x + (1 | subj)", panel, correlation=mixedfx.AR1("subj", "t"),
                variance=mixedfx.VarIdent("site"))
    pd.testing.assert_frame_equal(panel, before)
