"""Marginal (population) means: closed forms, quadrature and brute-force integration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate, special, stats

from mixedfx.families import Cloglog, Inverse, Log, Logit, Probit
from mixedfx.marginal import marginal_mean

LOGIT, LOG, PROBIT, CLOGLOG = Logit(), Log(), Probit(), Cloglog()
ETA = np.linspace(-4, 3, 15)


@pytest.mark.parametrize("v", [0.04, 0.5, 1.0, 2.25, 9.0])
def test_log_link_closed_form_equals_quadrature(v):
    exact = marginal_mean(LOG, ETA, v)
    np.testing.assert_allclose(exact, np.exp(ETA + v / 2))
    np.testing.assert_allclose(marginal_mean(LOG, ETA, v, method="quadrature"), exact,
                               rtol=1e-10)


@pytest.mark.parametrize("v", [0.25, 1.0, 4.0, 25.0])
def test_probit_closed_form_equals_quadrature(v):
    np.testing.assert_allclose(marginal_mean(PROBIT, ETA, v, method="quadrature"),
                               marginal_mean(PROBIT, ETA, v), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("link", "sd"), list(itertools.product(
    [LOGIT, CLOGLOG], [0.3, 1.0, 2.5, 6.0, 12.0])))
def test_quadrature_against_adaptive_numerical_integration(link, sd):
    eta = np.array([-5.0, -1.0, 0.0, 0.7, 4.0])
    got = marginal_mean(link, eta, sd**2)
    want = [integrate.quad(lambda t, e=e: link.linkinv(e + sd * t) * stats.norm.pdf(t),
                           -np.inf, np.inf, epsabs=1e-13, limit=400)[0] for e in eta]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_attenuation_of_the_logit():
    # the population curve is flatter: below 1/2 it lies above the fixed-effects curve
    eta = np.array([-2.0, 0.0, 2.0])
    m = marginal_mean(LOGIT, eta, 4.0)
    assert m[0] > special.expit(-2) and m[1] == pytest.approx(0.5) and m[2] < special.expit(2)


def test_sum_of_terms_reduces_to_one_normal_integral():
    # a correlated (1 + x | g) term and a crossed (1 | h) term: the 3-D integral over
    # (u0, u1, w) by tensor Gauss-Hermite equals the 1-D integral with v = z'Gz + s_h^2
    G = np.array([[0.6, 0.15], [0.15, 0.3]])
    s_h2 = 0.35
    x, eta = 1.4, -0.8
    z = np.array([1.0, x])
    v = z @ G @ z + s_h2
    t, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / np.sqrt(2 * np.pi)
    L = np.linalg.cholesky(G)
    T0, T1, T2 = np.meshgrid(t, t, t, indexing="ij")
    W = np.einsum("i,j,k->ijk", w, w, w)
    u0 = L[0, 0] * T0
    u1 = L[1, 0] * T0 + L[1, 1] * T1
    brute = np.sum(W * special.expit(eta + u0 + x * u1 + np.sqrt(s_h2) * T2))
    assert marginal_mean(LOGIT, np.array([eta]), v)[0] == pytest.approx(brute, abs=1e-12)


def test_monte_carlo_agrees():
    rng = np.random.default_rng(1)
    draws = rng.normal(0.0, 1.5, size=400_000)
    mc = special.expit(0.5 + draws)
    m = marginal_mean(LOGIT, np.array([0.5]), 2.25)[0]
    assert abs(m - mc.mean()) < 4 * mc.std() / np.sqrt(len(mc))


def test_zero_variance_and_bad_input():
    np.testing.assert_allclose(marginal_mean(LOGIT, ETA, 0.0), special.expit(ETA))
    with pytest.raises(ValueError, match="inverse.*pole"):
        marginal_mean(Inverse(), ETA, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        marginal_mean(LOGIT, ETA, -1.0)
