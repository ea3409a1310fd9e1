"""Laplace GLMM fits (mixedfx.glmm) against lme4 and against the exact Laplace value by
brute force.

Two references per model: lme4's default fit (cbpp_laplace.json, verbagg_laplace.json from
shared_refs.R) and the same fit with a tight PIRLS tolerance and optimizer end
(*_tight.json from glmm_core_refs.R). lme4's default PIRLS stops at a relative change of 1e-7
and takes the log determinant from the weights of the previous iterate, so its deviance
function is off by up to ~6e-4 (cbpp: its loglik is 2.8e-4 below the exact Laplace value at
its own estimates) and the finite-difference Hessian of that function moves the standard
errors by up to 1.3%. mixedfx iterates the modes until they move by less than 1e-11 and
evaluates the Laplace deviance at the final weights: it agrees with the tight references to
~1e-6 (loglik within 1e-4, se within 1%, estimates within 1e-3 as the issue asks), and with
the default references within their own error (estimates 2e-3, se 1.5%, loglik at least
lme4's minus 1e-4: a higher log-likelihood at the same model is the better optimum).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import mixedfx
from mixedfx.families import get_family
from mixedfx.glmm.model import GlmmModel
from mixedfx.glmm.pirls import PirlsEngine
from tests.conftest import load_reference

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
VERBAGG = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"


@pytest.fixture(scope="module")
def cbpp():
    return mixedfx.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return mixedfx.glmm(CBPP, cbpp, family="binomial", data_name="cbpp")


def _check(res, ref, *, tight: bool):
    names = list(ref["fixef"])
    rtol, se_rtol = (1e-3, 0.01) if tight else (2e-3, 0.015)
    np.testing.assert_allclose(res.fixef[names], list(ref["fixef"].values()), rtol=rtol)
    np.testing.assert_allclose(res.se[names], list(ref["se"].values()), rtol=se_rtol)
    ref_vc = pd.DataFrame(ref["varcorr"])
    np.testing.assert_allclose(res.varcorr["vcov"], ref_vc["vcov"], rtol=2 * rtol)
    np.testing.assert_allclose(res.varcorr["sdcor"], ref_vc["sdcor"], rtol=rtol)
    np.testing.assert_allclose(res.theta, np.atleast_1d(ref["theta"]), rtol=rtol)
    if tight:
        assert res.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    else:
        assert ref["loglik"] - 1e-4 <= res.loglik < ref["loglik"] + 1e-3
    assert res.nobs == ref["nobs"] and res.ngroups == ref["ngroups"]


def test_cbpp_matches_lme4(cbpp_fit):
    ref = load_reference("cbpp_laplace")
    _check(cbpp_fit, load_reference("cbpp_laplace_tight"), tight=True)
    _check(cbpp_fit, ref, tight=False)
    assert cbpp_fit.npar == 5 and cbpp_fit.converged and not cbpp_fit.singular
    assert cbpp_fit.aic == pytest.approx(-2 * cbpp_fit.loglik + 10)
    assert cbpp_fit.bic == pytest.approx(-2 * cbpp_fit.loglik + 5 * np.log(56))
    # lme4's deviance() of a GLMM: the conditional deviance at the modes
    assert cbpp_fit.conditional_deviance == pytest.approx(ref["deviance"], rel=1e-3)
    assert list(cbpp_fit.varcorr.group) == ["herd"]  # no Residual row for the binomial
    modes = pd.DataFrame(ref["ranef"])
    np.testing.assert_allclose(cbpp_fit.ranef["herd"]["(Intercept)"], modes["mode"],
                               rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(cbpp_fit.ranef_sd["herd"]["(Intercept)"], modes["cond_sd"],
                               rtol=2e-3)


def _brute_laplace(cbpp, theta, beta, inverse=special.expit, derivative=None):
    """-2 log L by the Laplace approximation per herd, with scipy alone.

    With ``derivative`` (d mu / d eta) the log determinant takes the expected information
    n (d mu / d eta)^2 / (mu (1 - mu)) at the mode, as lme4's PIRLS weights do for a
    non-canonical link; otherwise the observed second derivative (the two coincide for the
    canonical logit)."""
    X = pd.get_dummies(cbpp.period, drop_first=True).to_numpy(float)
    X = np.column_stack([np.ones(len(cbpp)), X])
    total = 0.0
    for herd in cbpp.herd.cat.categories:
        r = (cbpp.herd == herd).to_numpy()
        k, n, xb = cbpp.incidence[r].to_numpy(), cbpp["size"][r].to_numpy(), X[r] @ beta

        def h(u, k=k, n=n, xb=xb):
            return -2 * np.sum(stats.binom.logpmf(k, n, inverse(xb + theta * u))) + u * u

        u = optimize.minimize_scalar(h, bracket=(-1, 1), tol=1e-12).x
        if derivative is None:
            e = 1e-4
            total += h(u) + np.log((h(u + e) - 2 * h(u) + h(u - e)) / e**2 / 2)
        else:
            eta = xb + theta * u
            mu = inverse(eta)
            info = np.sum(n * derivative(eta) ** 2 / (mu * (1 - mu)))
            total += h(u) + np.log1p(theta**2 * info)
    return total


def test_laplace_deviance_equals_brute_force(cbpp):
    model = GlmmModel.build(CBPP, cbpp, get_family("binomial"))
    engine = PirlsEngine(model, free_beta=False)
    theta, beta = 0.7, np.array([-1.2, -1.0, -1.1, -1.6])
    state = engine.run(np.array([theta]), beta)
    assert engine.laplace(state) == pytest.approx(_brute_laplace(cbpp, theta, beta), abs=1e-5)
    # warm start from other modes converges to the same value
    again = engine.run(np.array([theta]), beta, tuple(u + 0.3 for u in state.u))
    assert engine.laplace(again) == pytest.approx(engine.laplace(state), abs=1e-10)


@pytest.mark.parametrize(("name", "data"), [("cbpp_laplace", "cbpp"),
                                            ("verbagg_laplace", "VerbAgg")])
def test_loglik_above_lme4_default_is_lme4s_evaluation_error(name, data):
    """The shared references are lme4's default fits, whose reported loglik lies 2.8e-4
    (cbpp) and 3.8e-4 (VerbAgg) below the Laplace value at lme4's own estimates (its PIRLS
    stops early). Evaluated at those estimates, the Laplace loglik is within 1e-4 of the
    fitted maximum: the gap to lme4's number is lme4's evaluation, not a different optimum."""
    ref = load_reference(name)
    frame = mixedfx.datasets.load(data)
    model = GlmmModel.build(ref["formula"], frame, get_family("binomial"))
    assert list(model.fixed_names) == list(ref["fixef"])
    engine = PirlsEngine(model, free_beta=False)
    state = engine.run(np.atleast_1d(np.asarray(ref["theta"], float)),
                       np.array(list(ref["fixef"].values())))
    at_lme4 = -engine.laplace(state) / 2
    res = mixedfx.glmm(ref["formula"], frame)
    assert 1e-4 < at_lme4 - ref["loglik"] < 1e-3
    assert 0 <= res.loglik - at_lme4 < 1e-4


def test_cloglog_link_is_lme4s_laplace_by_brute_force(cbpp):
    """cloglog (non-canonical): the reported deviance is the Laplace approximation with the
    PIRLS (expected-information) weights in the log determinant, as lme4's, by brute force;
    the estimates are its stationary point; one AGQ point is the same fit."""
    res = mixedfx.glmm(CBPP, cbpp, link="cloglog")
    assert res.link == "cloglog" and res.converged

    def inverse(eta):
        return -np.expm1(-np.exp(eta))

    def derivative(eta):
        return np.exp(eta - np.exp(eta))

    x0 = np.r_[res.theta, res.fixef.to_numpy()]

    def dev(x):
        return _brute_laplace(cbpp, x[0], x[1:], inverse, derivative)

    assert dev(x0) == pytest.approx(-2 * res.loglik, abs=1e-6)
    h = 1e-3
    grad = [(dev(x0 + h * e) - dev(x0 - h * e)) / (2 * h) for e in np.eye(x0.size)]
    np.testing.assert_allclose(grad, 0.0, atol=1e-3)
    # the observed-information Laplace is a different number for this link
    assert abs(_brute_laplace(cbpp, x0[0], x0[1:], inverse) - dev(x0)) > 1e-2
    one = mixedfx.glmm(CBPP, cbpp, link="cloglog", method="agq", n_agq=1)
    assert one.loglik == pytest.approx(res.loglik, abs=1e-8)


def test_verbagg_matches_lme4():
    res = mixedfx.glmm(VERBAGG, mixedfx.datasets.load("VerbAgg"))
    _check(res, load_reference("verbagg_laplace_tight"), tight=True)
    _check(res, load_reference("verbagg_laplace"), tight=False)


def test_nagq0_is_close_and_uses_pls_vcov(cbpp, cbpp_fit):
    res = mixedfx.glmm(CBPP, cbpp, n_agq=0)
    assert res.n_agq == 0 and res.vcov_method == "pls" and res.optsum_init is None
    ref = load_reference("cbpp_nagq0_tight")
    np.testing.assert_allclose(res.fixef, list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.theta, [ref["theta"]], rtol=1e-4)
    np.testing.assert_allclose(res.se, list(ref["se"].values()), rtol=1e-3)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    assert res.loglik <= cbpp_fit.loglik + 1e-8  # nAGQ = 0 does not maximize the Laplace


def test_response_forms_agree(cbpp, cbpp_fit):
    prop = cbpp.assign(p=cbpp.incidence / cbpp["size"])
    res = mixedfx.glmm("p ~ period + (1 | herd)", prop, weights="size")
    np.testing.assert_allclose(res.fixef, cbpp_fit.fixef, rtol=1e-6)
    assert res.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-8)
    # the same data as 0/1 rows: the likelihood differs by the binomial coefficients only
    rows = []
    for _, r in cbpp.iterrows():
        rows += [(r.herd, r.period, 1)] * int(r.incidence)
        rows += [(r.herd, r.period, 0)] * int(r["size"] - r.incidence)
    long = pd.DataFrame(rows, columns=["herd", "period", "y"])
    long["period"] = long.period.astype(cbpp.period.dtype)
    res01 = mixedfx.glmm("y ~ period + (1 | herd)", long)
    np.testing.assert_allclose(res01.fixef, cbpp_fit.fixef, rtol=1e-5)
    const = float(np.sum(special.gammaln(cbpp["size"] + 1) - special.gammaln(cbpp.incidence + 1)
                         - special.gammaln(cbpp["size"] - cbpp.incidence + 1)))
    assert res01.loglik + const == pytest.approx(cbpp_fit.loglik, abs=1e-6)


def test_result_api(cbpp_fit, cbpp):
    d = cbpp_fit.to_dict()
    assert d["family"] == "binomial" and d["link"] == "logit" and d["method"] == "laplace"
    text = cbpp_fit.summary()
    assert "Laplace Approximation" in text and "z value" in text and "herd" in text
    assert np.all((cbpp_fit.fitted > 0) & (cbpp_fit.fitted < 1))
    assert cbpp_fit.sigma == 1.0 and cbpp_fit.dispersion == 1.0
    ct = cbpp_fit.coef_table()
    assert ct.p_value.between(0, 1).all()
    cond = cbpp_fit.predict()
    np.testing.assert_allclose(cond, cbpp_fit.fitted, rtol=1e-8)
    import json

    back = json.loads(json.dumps(d))
    assert back["loglik"] == pytest.approx(cbpp_fit.loglik)
    assert "size" in cbpp.columns and "_mixedfx_proportion" not in cbpp.columns


@pytest.mark.parametrize("with_x", [True, False])
def test_refilled_blocks_equal_the_engines(with_x):
    from mixedfx.glmm.crossprod import WeightedCrossprod
    from mixedfx.linalg.blocks import build_blocks

    rng = np.random.default_rng(4)
    n = 300
    d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 15, n).astype(str),
                      "h": rng.integers(0, 6, n).astype(str), "y": rng.integers(0, 2, n)})
    model = GlmmModel.build("y ~ x + (1 + x | g) + (1 + x | h)", d, get_family("binomial"))
    X = model.X if with_x else np.zeros((n, 0))
    cross = WeightedCrossprod(model.engine_terms, X)
    for _ in range(2):  # refilled twice: no stale sums
        w, z = rng.uniform(0.1, 1, n), rng.normal(size=n)
        cross.update(w, z)
    ref = build_blocks(model.engine_terms, X, z, w)
    for name in ("A11", "A21_val", "A22"):
        np.testing.assert_allclose(getattr(cross.blocks, name), getattr(ref, name),
                                   rtol=1e-12, atol=1e-12)


def test_probit_link_matches_lme4(cbpp):
    res = mixedfx.glmm(CBPP, cbpp, link="probit")
    assert res.link == "probit"
    _check(res, load_reference("cbpp_probit_tight"), tight=True)


def test_poisson_vector_term_matches_lme4():
    from tests.conftest import REFERENCE

    d = pd.read_csv(REFERENCE / "counts_core.csv").assign(g=lambda f: f.g.astype(str))
    res = mixedfx.glmm("y ~ x + (1 + x | g)", d, family="poisson")
    ref = load_reference("poisson_slope_tight")
    _check(res, ref, tight=True)
    assert list(res.varcorr.term2.fillna("")) == ["", "", "x"]  # variances, then correlation


def test_gamma_log_link_recovers_simulated_values():
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.4, 30)[g])
    shape = 5.0  # dispersion 0.2
    d = pd.DataFrame({"y": rng.gamma(shape, mu / shape), "x": x, "g": g.astype(str)})
    res = mixedfx.glmm("y ~ x + (1 | g)", d, family="Gamma", link="log")
    assert abs(res.fixef["x"] - 0.5) < 3 * res.se["x"]
    assert abs(res.fixef["(Intercept)"] - 1.0) < 3 * res.se["(Intercept)"]
    assert list(res.varcorr.group) == ["g", "Residual"]
    assert res.dispersion == pytest.approx(0.2, rel=0.2)
    assert res.npar == 4 and 0.2 < res.varcorr.sdcor[0] < 0.7


@pytest.mark.parametrize(("family", "shape"), [("Gamma", 5.0), ("inverse.gaussian", 10.0)])
def test_inverse_link_recovers_simulated_fixed_effects(family, shape):
    """Gamma and inverse Gaussian with the inverse link (mu = 1 / eta): the simulated
    coefficients are recovered within 3 standard errors."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(30), 20)
    x = rng.uniform(-1, 1, g.size)
    mu = 1 / (0.5 + 0.1 * x + rng.normal(0, 0.08, 30)[g])
    y = rng.gamma(shape, mu / shape) if family == "Gamma" else rng.wald(mu, shape)
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    res = mixedfx.glmm("y ~ x + (1 | g)", d, family=family, link="inverse")
    assert res.link == "inverse" and res.converged
    assert abs(res.fixef["(Intercept)"] - 0.5) < 3 * res.se["(Intercept)"]
    assert abs(res.fixef["x"] - 0.1) < 3 * res.se["x"]
    assert list(res.varcorr.group) == ["g", "Residual"]
    assert np.all(res.fitted > 0)


def test_pql_dispatch(cbpp):
    res = mixedfx.glmm(CBPP, cbpp, method="pql")
    ref = load_reference("cbpp_pql")
    np.testing.assert_allclose(res.fixef[list(ref["fixef"])], list(ref["fixef"].values()),
                               rtol=1e-3)
    assert np.isnan(res.loglik)
