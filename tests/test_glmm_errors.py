"""Bad input to mixedfx.glmm: clear errors naming the problem, separation warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import ConvergenceWarning, DataError
from mixedfx.families import Poisson
from mixedfx.glmm.model import GlmmModel
from mixedfx.glmm.pirls import PirlsEngine, PirlsError


def _data(seed=0, n=120):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), n // 12)
    x = rng.normal(size=n)
    eta = -0.3 + 0.8 * x + rng.normal(0, 0.7, 12)[g]
    return pd.DataFrame({"g": g.astype(str), "x": x,
                         "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                         "k": rng.poisson(np.exp(eta))})


def test_binomial_response_checks():
    d = _data()
    with pytest.raises(DataError, match="response 'k'.*values above 1"):
        mixedfx.glmm("k ~ x + (1 | g)", d)
    bad = d.assign(p=d.k / 2.0)
    with pytest.raises(DataError, match="successes exceed trials"):
        mixedfx.glmm("p ~ x + (1 | g)", bad.assign(p=bad.p + 1.0), weights=np.full(len(d), 2.0))
    with pytest.raises(DataError, match="negative"):
        mixedfx.glmm("y ~ x + (1 | g)", d.assign(y=-d.y))
    with pytest.raises(DataError, match="non-negative counts"):
        mixedfx.glmm("cbind(k, 3 - k) ~ x + (1 | g)", d)
    three = d.assign(y=pd.Categorical(np.resize(["a", "b", "c"], len(d))))
    with pytest.raises(DataError, match="3 levels"):
        mixedfx.glmm("y ~ x + (1 | g)", three)


def test_poisson_response_checks():
    d = _data()
    with pytest.raises(DataError, match="Poisson response 'k'.*negative values at row 3"):
        mixedfx.glmm("k ~ x + (1 | g)", d.assign(k=np.where(np.arange(len(d)) == 3, -1, d.k)),
                     family="poisson")
    with pytest.raises(DataError, match="non-integer"):
        mixedfx.glmm("k ~ x + (1 | g)", d.assign(k=d.k + 0.5), family="poisson")


def test_unknown_names():
    d = _data()
    with pytest.raises(ValueError, match="unknown family 'binomal'; valid families"):
        mixedfx.glmm("y ~ x + (1 | g)", d, family="binomal")
    with pytest.raises(ValueError, match="link 'identity' is not available for the binomial"):
        mixedfx.glmm("y ~ x + (1 | g)", d, link="identity")
    with pytest.raises(ValueError, match="unknown method"):
        mixedfx.glmm("y ~ x + (1 | g)", d, method="mcmc")
    with pytest.raises(ValueError, match="n_agq 0 or 1"):
        mixedfx.glmm("y ~ x + (1 | g)", d, n_agq=5)
    with pytest.raises(DataError, match="no random-effects term"):
        mixedfx.glmm("y ~ x", d)


def test_complete_separation_names_the_term():
    d = _data()
    d["grp"] = np.where(np.arange(len(d)) % 4 == 0, "b", "a")
    d.loc[d.grp == "b", "y"] = 1
    with pytest.warns(ConvergenceWarning, match="complete separation.*'grpb'"):
        res = mixedfx.glmm("y ~ x + grp + (1 | g)", d)
    assert res.fixef["grpb"] > 4  # running off towards infinity


def test_pirls_failure_names_the_step():
    d = _data()
    model = GlmmModel.build("k ~ x + (1 | g)", d, Poisson("identity"))
    engine = PirlsEngine(model, free_beta=False)
    with pytest.raises(PirlsError, match="starting linear predictor"):
        engine.run(np.array([1.0]), np.array([-5.0, 0.0]))

    class Broken(Poisson):  # a variance function undefined above 3
        def variance(self, mu):
            return np.where(mu > 3, np.nan, mu)

    engine = PirlsEngine(GlmmModel.build("k ~ x + (1 | g)", d, Broken()), free_beta=False)
    with pytest.raises(PirlsError, match="PIRLS iteration 1: non-finite IRLS weights"):
        engine.run(np.array([1.0]), np.array([0.5, 1.0]))


def test_start_outside_the_range_names_rows_and_the_default_link():
    """Counts growing exponentially in x: the identity-link GLM start predicts a negative
    mean for some rows; the error says how many and suggests the family's default link."""
    d = _data()
    with pytest.raises(PirlsError, match=r"starting values \(the GLM fit of the fixed effects "
                       r"alone\) give means outside the poisson family's range at [1-9]\d* of "
                       r"120 rows: the identity link.*default link 'log'"):
        mixedfx.glmm("k ~ x + (1 | g)", d, family="poisson", link="identity")


def test_data_not_modified():
    d = _data()
    before = d.copy()
    mixedfx.glmm("y ~ x + (1 | g)", d.assign(y=d.y.map({0: "no", 1: "yes"})))
    pd.testing.assert_frame_equal(d, before)
