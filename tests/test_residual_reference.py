"""Residual structures against nlme 3.1-162 (tests/reference/*.json).

ovary_ar1 and orthodont_varident come from shared_refs.R; the others from residual_refs.R.
Tolerances (from the issue): fixef 1e-4, standard errors, sigma, log-likelihood and the
structure parameters 1e-3 (relative for the parameters, absolute for loglik).
"""

from __future__ import annotations

import numpy as np
import pytest

import mixedfx
from mixedfx import datasets

from .conftest import load_reference


def ovary() -> object:
    """Ovary with R's sin(2*pi*Time), cos(2*pi*Time) as columns (the engine's formula
    language does not evaluate R's ``pi``)."""
    d = datasets.load("Ovary")
    d["sin2"] = np.sin(2 * np.pi * d.Time)
    d["cos2"] = np.cos(2 * np.pi * d.Time)
    return d


OVARY_NAMES = {"(Intercept)": "(Intercept)", "sin(2 * pi * Time)": "sin2",
               "cos(2 * pi * Time)": "cos2"}


def check(res: mixedfx.LmmResult, ref: dict, names: dict | None = None,
          params: dict | None = None) -> None:
    names = names or {k: k for k in ref["fixef"]}
    for r_name, ours in names.items():
        assert res.fixef[ours] == pytest.approx(ref["fixef"][r_name], abs=1e-4, rel=1e-6)
        assert res.se[ours] == pytest.approx(ref["se"][r_name], rel=1e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    assert res.aic == pytest.approx(ref["aic"], abs=1e-3)
    # nlme's REML BIC uses log(n - p); mixedfx keeps lme4's log(n) for every fit
    n_bic = res.nobs - len(res.fixef) if ref["method"] == "REML" else res.nobs
    nlme_bic = res.bic - res.npar * (np.log(res.nobs) - np.log(n_bic))
    assert nlme_bic == pytest.approx(ref["bic"], abs=1e-3)
    expected = {**(ref["corr_params"] or {}), **(ref["var_params"] or {})}
    for key, value in (params or expected).items():
        assert res.residual_params[key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
    assert res.converged


def test_ovary_ar1_reml():
    ref = load_reference("ovary_ar1")
    res = mixedfx.lmm("follicles ~ sin2 + cos2 + (1 | Mare)", ovary(),
                      correlation=mixedfx.AR1(group="Mare"))
    check(res, ref, OVARY_NAMES)
    assert res.npar == 3 + 1 + 1 + 1  # beta, theta, sigma, Phi
    sd = res.varcorr.set_index("group").sdcor
    assert sd["Mare"] == pytest.approx(ref["random_sd"]["(Intercept)"], rel=1e-3)


def test_ovary_ar1_default_group_is_the_random_factor():
    res = mixedfx.lmm("follicles ~ sin2 + cos2 + (1 | Mare)", ovary(),
                      correlation=mixedfx.AR1())
    assert res.residual_params["Phi"] == pytest.approx(
        load_reference("ovary_ar1")["corr_params"]["Phi"], rel=1e-3)


def test_orthodont_varident_reml():
    ref = load_reference("orthodont_varident")
    # nlme's reference stratum is the first in its group-sorted data: Female (F01 < M01)
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", datasets.load("Orthodont"),
                      variance=mixedfx.VarIdent("Sex", reference="Female"))
    check(res, ref)
    assert res.residual_params["Female"] == 1.0
    assert res.npar == 3 + 1 + 1 + 1


def test_varident_default_reference_is_the_first_level():
    ref = load_reference("orthodont_varident")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", datasets.load("Orthodont"),
                      variance=mixedfx.VarIdent("Sex"))
    # Male is the first level: the Female ratio is the reciprocal, sigma the Male sd
    assert res.residual_params["Male"] == 1.0
    assert res.residual_params["Female"] == pytest.approx(1 / ref["var_params"]["Male"],
                                                          rel=1e-3)
    assert res.sigma == pytest.approx(ref["sigma"] * ref["var_params"]["Male"], rel=1e-3)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-3)
