"""Bad input gets a clear error naming the column, term or value, and how to fix it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets


@pytest.fixture
def sleep() -> pd.DataFrame:
    return datasets.load("sleepstudy")


def test_unknown_column_suggests_closest(sleep):
    with pytest.raises(mixedfx.DataError, match="column 'Dayz'.*Did you mean 'Days'"):
        mixedfx.lmm("Reaction ~ Dayz + (1 | Subject)", sleep)


def test_unknown_grouping_column(sleep):
    with pytest.raises(mixedfx.DataError, match="'Subjet'.*Did you mean 'Subject'"):
        mixedfx.lmm("Reaction ~ Days + (1 | Subjet)", sleep)


def test_non_numeric_response(sleep):
    with pytest.raises(mixedfx.DataError, match="response 'Subject' is not numeric"):
        mixedfx.lmm("Subject ~ Days + (1 | Subject)", sleep)


def test_missing_rows_dropped_and_counted(sleep):
    df = sleep.copy()
    df.loc[[0, 5, 7], "Reaction"] = np.nan
    with pytest.warns(mixedfx.MissingDataWarning, match="3 row"):
        res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", df)
    assert res.nobs == 177 and res.n_dropped == 3
    assert "3 observations deleted" in res.summary()


def test_empty_after_dropping_missing(sleep):
    df = sleep.copy()
    df["Reaction"] = np.nan
    with pytest.raises(mixedfx.DataError, match="no rows left"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixedfx.lmm("Reaction ~ Days + (1 | Subject)", df)


def test_grouping_factor_with_as_many_levels_as_rows(sleep):
    df = sleep.assign(obs=np.arange(len(sleep)))
    with pytest.raises(mixedfx.DataError, match="'obs' has 180 levels for 180 observations"):
        mixedfx.lmm("Reaction ~ Days + (1 | obs)", df)


def test_factor_with_one_level(sleep):
    df = sleep.assign(one="a")
    with pytest.raises(mixedfx.DataError, match="'one' has only one level"):
        mixedfx.lmm("Reaction ~ Days + (1 | one)", df)


@pytest.mark.parametrize("formula, fragment, caret", [
    ("Reaction ~ Days + (Days | Subject", r"unclosed '\('", 18),
    ("Reaction ~ Days + Days | Subject", "must be in parentheses", 23),
    ("Reaction Days", "one response and one '~'", 0),
    ("Reaction ~ Days + + (1 | Subject)", "empty term", 17),
    ("Reaction ~ Days + (1 | )", "missing grouping factor", 22),
])
def test_malformed_formula_points_at_position(sleep, formula, fragment, caret):
    with pytest.raises(mixedfx.FormulaError, match=fragment) as info:
        mixedfx.lmm(formula, sleep)
    assert info.value.pos == caret
    assert info.value.args[0].splitlines()[-1] == "  " + " " * caret + "^"


def test_no_random_term(sleep):
    with pytest.raises(mixedfx.DataError, match="no random-effects term"):
        mixedfx.lmm("Reaction ~ Days", sleep)


def test_rank_deficient_x_drops_aliased_columns(sleep):
    df = sleep.assign(Days2=2 * sleep.Days)
    with pytest.warns(mixedfx.RankDeficiencyWarning, match="dropping 1 column.*Days2"):
        res = mixedfx.lmm("Reaction ~ Days + Days2 + (Days | Subject)", df)
    assert list(res.fixef.index) == ["(Intercept)", "Days"]
    assert res.dropped_columns == ("Days2",)
    ref = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    assert res.objective == pytest.approx(ref.objective, rel=1e-10)


def test_non_convergence_is_loud(sleep):
    with pytest.warns(mixedfx.ConvergenceWarning, match="did not converge.*MAXEVAL_REACHED"):
        res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, control={"maxeval": 5})
    assert not res.converged
    assert "did not converge" in res.summary()


def test_weights_wrong_length(sleep):
    with pytest.raises(mixedfx.DataError, match="weights has 3 values but the data has 180"):
        mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, weights=[1, 2, 3])


def test_negative_weights(sleep):
    with pytest.raises(mixedfx.DataError, match="non-negative"):
        mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, weights=-np.ones(180))


def test_data_not_a_frame():
    with pytest.raises(mixedfx.DataError, match="pandas or polars DataFrame"):
        mixedfx.lmm("y ~ 1 + (1 | g)", {"y": [1, 2]})
