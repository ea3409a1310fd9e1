"""Likelihood-ratio comparison (lme4's anova of several fits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import mixedfx
from mixedfx import datasets
from mixedfx.errors import DataError
from tests.conftest import load_reference


@pytest.fixture(scope="module")
def sleep():
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fits(sleep):
    small = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    large = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    return small, large


def test_refit_by_ml_matches_lme4(fits):
    small, large = fits
    cmp = mixedfx.compare(large, small)  # given out of order: sorted by npar
    t = cmp.table
    assert list(t.index) == ["model2", "model1"]
    assert list(t.npar) == [4, 6]
    assert t.chisq.iloc[1] == pytest.approx(42.139, abs=5e-4)  # lme4: 42.139 on 2 df
    assert t.df.iloc[1] == 2
    assert t.p_value.iloc[1] == pytest.approx(stats.chi2.sf(t.chisq.iloc[1], 2), rel=1e-12)
    assert np.isnan(t.chisq.iloc[0]) and np.isnan(t.p_value.iloc[0])
    assert cmp.criterion == "ML" and cmp.refitted == ("model1", "model2")
    ml = load_reference("sleepstudy_ml")
    assert t.loglik.iloc[1] == pytest.approx(ml["loglik"], rel=1e-7)
    assert t.aic.iloc[1] == pytest.approx(ml["aic"], rel=1e-7)
    assert t.bic.iloc[1] == pytest.approx(ml["bic"], rel=1e-7)
    assert "refitted by ML" in str(cmp)
    json.dumps(cmp.to_dict())


def test_names_label_rows(fits):
    cmp = mixedfx.compare(*fits, names=["intercept", "slope"])
    assert list(cmp.table.index) == ["intercept", "slope"]


def test_no_refit_compares_reml_with_same_fixed_effects(fits):
    small, large = fits
    cmp = mixedfx.compare(small, large, refit=False)
    assert cmp.criterion == "REML" and cmp.refitted == ()
    assert cmp.table.chisq.iloc[1] == pytest.approx(2 * (large.loglik - small.loglik))
    assert cmp.table.loglik.iloc[1] == pytest.approx(load_reference("sleepstudy_reml")["loglik"])


def test_no_refit_refused_when_fixed_effects_differ(sleep, fits):
    other = mixedfx.lmm("Reaction ~ 1 + (1 | Subject)", sleep)
    with pytest.raises(DataError, match="same fixed effects"):
        mixedfx.compare(other, fits[0], refit=False)
    ml = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    with pytest.raises(DataError, match="REML fit with an ML fit"):
        mixedfx.compare(ml, fits[1], refit=False)


def test_ml_fits_are_not_refitted(sleep):
    a = mixedfx.lmm("Reaction ~ 1 + (1 | Subject)", sleep, reml=False)
    b = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    cmp = mixedfx.compare(a, b)
    assert cmp.refitted == ()
    assert cmp.table.chisq.iloc[1] == pytest.approx(2 * (b.loglik - a.loglik), rel=1e-12)


def test_different_data_refused(sleep, fits):
    fewer = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep.iloc[:170])
    with pytest.raises(DataError, match="different data.*180.*170"):
        mixedfx.compare(fits[0], fewer)
    shifted = mixedfx.lmm("Reaction ~ Days + (1 | Subject)",
                          sleep.assign(Reaction=sleep.Reaction + 1.0))
    with pytest.raises(DataError, match="different responses"):
        mixedfx.compare(fits[0], shifted)
    with pytest.raises(DataError, match="at least two"):
        mixedfx.compare(fits[0])


def test_residual_structure_results():
    ortho = datasets.load("Orthodont")
    base = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", ortho)
    hetero = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", ortho,
                         variance=mixedfx.VarIdent("Sex"))
    cmp = mixedfx.compare(base, hetero, refit=False)
    assert list(cmp.table.npar) == [base.npar, base.npar + 1]
    assert cmp.table.loglik.iloc[1] == pytest.approx(
        load_reference("orthodont_varident")["loglik"], rel=1e-6)
    assert cmp.table.chisq.iloc[1] == pytest.approx(2 * (hetero.loglik - base.loglik))
    refit = mixedfx.compare(base, hetero)
    assert refit.criterion == "ML"
    assert refit.table.df.iloc[1] == 1


def test_parametric_bootstrap_p_values(sleep, fits):
    cmp = mixedfx.compare(*fits, nsim=19, seed=1, progress=False)
    assert cmp.nsim == 19 and np.isnan(cmp.table.p_boot.iloc[0])
    assert cmp.table.p_boot.iloc[1] == pytest.approx(1 / 20)  # chisq 42 is never reached
    again = mixedfx.compare(*fits, nsim=19, seed=1, progress=False)
    assert again.table.p_boot.iloc[1] == cmp.table.p_boot.iloc[1]
    assert "parametric bootstrap" in str(cmp)
    # a useless covariate: the bootstrap p-value is near the chi-square one
    noise = sleep.assign(x=np.random.default_rng(0).normal(size=len(sleep)))
    a = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", noise)
    b = mixedfx.lmm("Reaction ~ Days + x + (1 | Subject)", noise)
    t = mixedfx.compare(a, b, nsim=99, seed=2, progress=False).table
    assert 0.1 < t.p_boot.iloc[1] < 0.6 and abs(t.p_boot.iloc[1] - t.p_value.iloc[1]) < 0.2
