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
    """Ovary with R's sin(2*pi*Time), cos(2*pi*Time) also as columns (sin2, cos2)."""
    d = datasets.load("Ovary")
    d["sin2"] = np.sin(2 * np.pi * d.Time)
    d["cos2"] = np.cos(2 * np.pi * d.Time)
    return d


OVARY_NAMES = {"(Intercept)": "(Intercept)", "sin(2 * pi * Time)": "sin2",
               "cos(2 * pi * Time)": "cos2"}


def check(res: mixedfx.LmmResult, ref: dict, names: dict | None = None,
          params: dict | None = None) -> None:
    names = names or {k: k for k in ref["fixef"]}
    # nlme's ML standard errors use sigma^2 n / (n - p); mixedfx keeps lme4's sigma^2
    p = len(res.fixef)
    ml_se = 1.0 if ref["method"] == "REML" else np.sqrt(res.nobs / (res.nobs - p))
    for r_name, ours in names.items():
        assert res.fixef[ours] == pytest.approx(ref["fixef"][r_name], abs=1e-4, rel=1e-6)
        assert res.se[ours] * ml_se == pytest.approx(ref["se"][r_name], rel=1e-3)
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


def test_ovary_ar1_with_r_functions_in_the_formula():
    """nlme's own formula, R's functions and pi evaluated, terms named as R prints them."""
    ref = load_reference("ovary_ar1")
    res = mixedfx.lmm("follicles ~ sin(2*pi*Time) + cos(2*pi*Time) + (1 | Mare)",
                      datasets.load("Ovary"), correlation=mixedfx.AR1(group="Mare"))
    assert list(res.fixef.index) == list(ref["fixef"])
    check(res, ref)


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


# ---- references made by tests/reference/residual_refs.R ------------------------------------


def test_ovary_car1_reml():
    ref = load_reference("ovary_car1")
    d = ovary()
    d["Time22"] = d.Time * 22
    res = mixedfx.lmm("follicles ~ sin2 + cos2 + (1 | Mare)", d,
                      correlation=mixedfx.CAR1(group="Mare", time="Time22"))
    check(res, ref, OVARY_NAMES)


def test_ovary_ar1_ml():
    ref = load_reference("ovary_ar1_ml")
    res = mixedfx.lmm("follicles ~ sin2 + cos2 + (1 | Mare)", ovary(), reml=False,
                      correlation=mixedfx.AR1(group="Mare"))
    check(res, ref, OVARY_NAMES)
    assert res.deviance == pytest.approx(-2 * ref["loglik"], abs=2e-3)


def test_pastes_compsymm_within_cask():
    ref = load_reference("pastes_compsymm")
    res = mixedfx.lmm("strength ~ 1 + (1 | batch)", datasets.load("Pastes"),
                      correlation=mixedfx.CompSymm(group="batch:cask"))
    check(res, ref)


def test_pastes_compsymm_matches_nested_random_intercepts():
    """Compound symmetry within cask with rho > 0 is the (1 | batch/cask) model."""
    ref = load_reference("pastes_nested")
    res = mixedfx.lmm("strength ~ 1 + (1 | batch)", datasets.load("Pastes"),
                      correlation=mixedfx.CompSymm(group=["batch", "cask"]))
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    var = {r["group"]: r["vcov"] for r in ref["varcorr"]}
    rho = res.residual_params["Rho"]
    assert rho * res.sigma**2 == pytest.approx(var["cask:batch"], rel=1e-3)
    assert (1 - rho) * res.sigma**2 == pytest.approx(var["Residual"], rel=1e-3)


def test_orthodont_varpower_fitted():
    """varPower(~fitted(.)): the fixed point of the alternation (nlme iterated to the end in
    residual_refs.R); nlme's own lme() stops a little short of it."""
    res = mixedfx.lmm("distance ~ age + (1 | Subject)", datasets.load("Orthodont"),
                      variance=mixedfx.VarPower())
    check(res, load_reference("orthodont_varpower_fixedpoint"))
    nlme = load_reference("orthodont_varpower_fitted")
    assert res.loglik == pytest.approx(nlme["loglik"], abs=1e-3)
    assert res.loglik >= nlme["loglik"] - 2e-4
    assert res.residual_params["power"] == pytest.approx(nlme["var_params"]["power"], rel=1e-3)
    assert res.sigma == pytest.approx(nlme["sigma"], rel=3e-3)


def test_orthodont_varpower_covariate():
    ref = load_reference("orthodont_varpower_age")
    res = mixedfx.lmm("distance ~ age + (1 | Subject)", datasets.load("Orthodont"),
                      variance=mixedfx.VarPower("age"))
    check(res, ref)


def test_orthodont_ar1_and_varident_ml():
    ref = load_reference("orthodont_ar1_varident_ml")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", datasets.load("Orthodont"),
                      reml=False, correlation=mixedfx.AR1(),
                      variance=mixedfx.VarIdent("Sex", reference="Female"))
    check(res, ref)
    assert res.npar == 3 + 1 + 1 + 2


def test_sleepstudy_varpower_fitted_with_random_slopes():
    """A vector random-effects term whitened by a variance function of the fitted values;
    nlme's lme() itself stops at power 2.656, short of the fixed point 2.602."""
    ref = load_reference("sleepstudy_varpower_fixedpoint")
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
                      variance=mixedfx.VarPower())
    check(res, ref)
