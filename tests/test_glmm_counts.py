"""A Poisson GLMM whose kernel deviance is negative (counts with mean above e): PIRLS must
accept steps by a tolerance on |deviance| (regression test), and agree with lme4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.datasets import simulate

REF = Path(__file__).parent / "reference"


def test_generator_matches_the_saved_data():
    saved = pd.read_csv(REF / "binary_outcomes_seed5.csv")
    fresh = simulate.binary_outcomes(seed=5)
    np.testing.assert_allclose(saved["hours"], fresh["hours"], rtol=1e-12)
    assert (saved["absences"] == fresh["absences"]).all()


@pytest.mark.parametrize("method", ["laplace", "agq"])
def test_poisson_counts_agree_with_lme4(method):
    ref = json.loads((REF / "glmm_counts.json").read_text())
    data = pd.read_csv(REF / "binary_outcomes_seed5.csv")
    res = mixedfx.glmm("absences ~ hours + (1 | school)", data, family="poisson",
                       method=method, n_agq=1)
    np.testing.assert_allclose(res.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    assert res.varcorr["sdcor"].iloc[0] == pytest.approx(ref["sd_school"], rel=1e-3)
    assert res.loglik == pytest.approx(ref["loglik"], rel=1e-8)
    np.testing.assert_allclose(res.se.to_numpy(), list(ref["se"].values()), rtol=1e-2)
