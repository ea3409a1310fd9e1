"""Adaptive Gauss-Hermite quadrature: lme4's nAGQ fits (tight references from
glmm_core_refs.R), n_agq=1 = Laplace, and vector random effects against brute-force
integration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import mixedfx
from mixedfx.families import get_family
from mixedfx.glmm.agq import AgqEngine, gauss_hermite
from mixedfx.glmm.model import GlmmModel
from tests.conftest import load_reference

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return mixedfx.datasets.load("cbpp")


@pytest.mark.parametrize("k", [5, 25])
def test_cbpp_matches_lme4_nagq(cbpp, k):
    res = mixedfx.glmm(CBPP, cbpp, method="agq", n_agq=k)
    assert res.method == "agq" and res.n_agq == k
    tight = load_reference(f"cbpp_agq{k}_tight")
    names = list(tight["fixef"])
    np.testing.assert_allclose(res.fixef[names], list(tight["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.theta, [tight["theta"]], rtol=1e-4)
    np.testing.assert_allclose(res.se[names], list(tight["se"].values()), rtol=2e-3)
    # lme4's nAGQ > 1 loglik leaves out the saturated log-likelihood; with it, they agree
    assert res.loglik == pytest.approx(tight["loglik"] + tight["loglik_constant"], abs=1e-5)
    if k == 25:  # lme4's default fit (shared_refs.R): estimates within 1e-3
        ref = load_reference("cbpp_agq25")
        np.testing.assert_allclose(res.fixef[names], list(ref["fixef"].values()), rtol=1e-3)
        np.testing.assert_allclose(res.varcorr.vcov, [ref["varcorr"][0]["vcov"]], rtol=1e-3)
        np.testing.assert_allclose(res.se[names], list(ref["se"].values()), rtol=1e-2)


def test_one_point_is_laplace(cbpp):
    lap = mixedfx.glmm(CBPP, cbpp)
    one = mixedfx.glmm(CBPP, cbpp, method="agq", n_agq=1)
    assert one.loglik == pytest.approx(lap.loglik, abs=1e-9)
    np.testing.assert_allclose(one.fixef, lap.fixef, rtol=1e-7)


def test_rule_integrates_polynomials():
    nodes, logw = gauss_hermite(4, 2)
    w = np.exp(logw)
    assert w.sum() == pytest.approx(1.0)
    assert w @ nodes[:, 0] ** 2 == pytest.approx(1.0)
    assert w @ (nodes[:, 0] ** 2 * nodes[:, 1] ** 2) == pytest.approx(1.0)
    assert w @ nodes[:, 0] ** 4 == pytest.approx(3.0)


def _slopes(seed=5, groups=40, per=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = np.tile(np.linspace(-1, 1, per), groups)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.8]], groups)
    eta = -0.2 + 0.7 * x + b[g, 0] + b[g, 1] * x
    return pd.DataFrame({"g": g.astype(str), "x": x, "y": rng.binomial(1, special.expit(eta))})


def test_vector_random_effects_match_brute_force():
    d = _slopes()
    model = GlmmModel.build("y ~ x + (1 + x | g)", d, get_family("binomial"))
    theta = np.array([1.1, 0.3, 0.7])  # display order = engine order (one term)
    beta = np.array([-0.2, 0.7])
    T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    G = T @ T.T
    level = model.terms[0].levels.index("0")
    rows = model.terms[0].codes == level
    y, x = d.y.to_numpy()[rows], d.x.to_numpy()[rows]

    # brute force: the integrand on a fine grid over b (trapezoid rule, spectrally accurate
    # for this smooth, rapidly decaying integrand), checked against a coarser grid
    def integral(npts):
        grid = np.linspace(-7, 7, npts)
        b0, b1 = np.meshgrid(grid, grid, indexing="ij")
        eta = beta[0] + beta[1] * x[:, None, None] + b0 + b1 * x[:, None, None]
        loglik = np.sum(stats.bernoulli.logpmf(y[:, None, None], special.expit(eta)), axis=0)
        prior = stats.multivariate_normal(cov=G).logpdf(np.dstack([b0, b1]))
        inner = integrate.trapezoid(np.exp(loglik + prior), grid, axis=1)
        return -2 * np.log(integrate.trapezoid(inner, grid))

    exact = integral(561)
    assert exact == pytest.approx(integral(401), abs=1e-9)
    values = {}
    for k in (1, 3, 7, 15):
        engine = AgqEngine(model, k)
        state = engine.run(theta, beta)
        values[k] = engine.agq_deviance(state, per_level=True)[level]
    assert values[15] == pytest.approx(exact, abs=1e-6)
    errors = [abs(values[k] - exact) for k in (1, 3, 7)]
    assert errors[0] > 1e-3  # the Laplace approximation is visibly off for Bernoulli data
    assert errors[0] > errors[1] > errors[2]


def test_vector_fit_converges_in_n_agq():
    d = _slopes()
    fits = {k: mixedfx.glmm("y ~ x + (1 + x | g)", d, method="agq", n_agq=k)
            for k in (1, 5, 11)}
    lap = mixedfx.glmm("y ~ x + (1 + x | g)", d)
    assert fits[1].loglik == pytest.approx(lap.loglik, abs=1e-6)
    assert abs(fits[5].loglik - lap.loglik) > 1e-3
    assert abs(fits[11].loglik - fits[5].loglik) < abs(fits[5].loglik - lap.loglik) / 10


def test_unsupported_structures(cbpp):
    d = _slopes().assign(h=lambda f: (f.index % 5).astype(str))
    with pytest.raises(ValueError, match="one random-effects term.*\\(1 \\| h\\)"):
        mixedfx.glmm("y ~ x + (1 | g) + (1 | h)", d, method="agq", n_agq=5)
    with pytest.raises(ValueError, match="n_agq >= 1"):
        mixedfx.glmm(CBPP, cbpp, method="agq", n_agq=0)


def test_docs_example_runs():
    """The python blocks of docs/glmm.md, with the values the text shows."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "glmm.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ns: dict = {}
    exec(compile("\n".join(blocks), "docs/glmm.md", "exec"), ns)
    assert ns["lap"] == pytest.approx(-92.0263, abs=1e-4)
    assert ns["herd_sd"] == pytest.approx(0.6423, abs=1e-4)
    assert ns["agq_loglik"] == pytest.approx(-91.9834, abs=1e-4)
    assert len(ns["probs"]) == 56 and ns["probs"].between(0, 1).all()
    curve = ns["curve"]
    assert abs(curve[7] - curve[3]) < abs(curve[3] - curve[1])
