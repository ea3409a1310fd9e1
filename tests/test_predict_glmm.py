"""Predictions of GLMM results: lme4's predict() for glmer (tests/reference/predict_refs.R)
and marginal means checked by direct numerical integration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import mixedfx
from mixedfx.marginal import marginal_mean
from tests.conftest import REFERENCE, load_reference

REF = load_reference("predict_refs")["cbpp_glmer"]
COUNTS = pd.read_csv(REFERENCE / "counts_sim.csv")
_FITS: dict = {}


def cbpp():
    if "cbpp" not in _FITS:
        _FITS["cbpp"] = mixedfx.glmm(REF["formula"], mixedfx.datasets.load("cbpp"),
                                     family="binomial")
    return _FITS["cbpp"]


def test_cbpp_predictions_agree_with_lme4():
    res, new = cbpp(), pd.DataFrame(REF["newdata"])
    # GLMM estimates agree with lme4 to ~1e-4 relative; probabilities inherit that
    np.testing.assert_allclose(res.predict(new, allow_new_levels=True), REF["conditional"],
                               rtol=1e-3)
    np.testing.assert_allclose(res.predict(new, allow_new_levels=True, scale="link"),
                               REF["conditional_link"], rtol=1e-3)
    np.testing.assert_allclose(res.predict(new, kind="fixed"), REF["fixed"], rtol=1e-3)
    np.testing.assert_allclose(res.predict(), REF["fitted"], rtol=1e-3)
    np.testing.assert_allclose(res.predict(), res.fitted, rtol=1e-10)


def test_cbpp_marginal_means_by_numerical_integration():
    res = cbpp()
    new = pd.DataFrame({"period": [1, 2, 3, 4]})
    eta = res.predict(new, kind="fixed", scale="link").to_numpy()
    sd = float(res.varcorr.sdcor.iloc[0])
    want = [integrate.quad(lambda t, e=e: special.expit(e + sd * t) * stats.norm.pdf(t),
                           -np.inf, np.inf, epsabs=1e-12)[0] for e in eta]
    marginal = res.predict(new, kind="marginal")
    np.testing.assert_allclose(marginal, want, rtol=0, atol=1e-9)
    assert np.all(marginal > special.expit(eta))  # below 1/2: pulled up towards 1/2
    link = res.predict(new, kind="marginal", scale="link")
    np.testing.assert_allclose(special.expit(link), marginal)
    assert np.all(np.abs(link) < np.abs(eta))  # the population log-odds are attenuated


def test_poisson_marginal_means_closed_form():
    res = mixedfx.glmm("y ~ x + (1 | site)", COUNTS, family="poisson")
    new = pd.DataFrame({"x": [-1.0, 0.0, 2.0]})
    eta = res.predict(new, kind="fixed", scale="link").to_numpy()
    var = float(res.varcorr.vcov.iloc[0])
    marginal = res.predict(new, kind="marginal").to_numpy()
    np.testing.assert_allclose(marginal, np.exp(eta + var / 2), rtol=1e-12)
    quad = marginal_mean(res.family_object.link, eta, var, method="quadrature")
    np.testing.assert_allclose(marginal, quad, rtol=1e-10)


def test_vector_random_effects_marginal_by_2d_integration():
    res = mixedfx.glmm("yb ~ x + (x | site)", COUNTS, family="binomial")
    new = pd.DataFrame({"x": [-1.5, 0.0, 1.2]})
    eta = res.predict(new, kind="fixed", scale="link").to_numpy()
    vc = res.varcorr
    G = np.diag(vc[vc.term2.isna()].vcov.to_numpy())
    G[0, 1] = G[1, 0] = vc[vc.term2.notna()].vcov.iloc[0]
    L = np.linalg.cholesky(G)
    t, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / np.sqrt(2 * np.pi)
    T0, T1 = np.meshgrid(t, t, indexing="ij")
    W = np.outer(w, w)
    marginal = res.predict(new, kind="marginal").to_numpy()
    for e, x, m in zip(eta, new.x, marginal, strict=True):
        u0 = L[0, 0] * T0
        u1 = L[1, 0] * T0 + L[1, 1] * T1
        assert m == pytest.approx(np.sum(W * special.expit(e + u0 + x * u1)), abs=1e-8)


def test_poisson_offset_predictions():
    data = mixedfx.datasets.load("cbpp")
    data = data.assign(lsize=np.log(data["size"]))
    res = mixedfx.glmm("incidence ~ period + (1 | herd)", data, family="poisson",
                       offset="lsize")
    np.testing.assert_allclose(res.predict(), res.fitted, rtol=1e-10)
    new = pd.DataFrame({"period": [1, 2], "herd": [1, 2], "lsize": np.log([10.0, 20.0])})
    with pytest.raises(mixedfx.DataError, match="offset"):
        res.predict(new)
    cond = res.predict(new, offset="lsize", scale="link").to_numpy()
    b = res.ranef["herd"].iloc[:2, 0].to_numpy()
    beta = res.fixef.to_numpy()
    np.testing.assert_allclose(cond, [beta[0] + b[0] + np.log(10), beta[0] + beta[1] + b[1]
                                      + np.log(20)], rtol=1e-12)
    var = float(res.varcorr.vcov.iloc[0])
    marg = res.predict(new, offset=new.lsize.to_numpy(), kind="marginal").to_numpy()
    np.testing.assert_allclose(marg, np.exp(cond - b + var / 2), rtol=1e-12)
