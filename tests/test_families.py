"""Families and links: inverses, derivatives, deviances and log-likelihoods against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixedfx.errors import DataError
from mixedfx.families import (
    LINKS,
    Binomial,
    Gamma,
    InverseGaussian,
    NegativeBinomial,
    Poisson,
    get_family,
    get_link,
)

# linear predictors inside each link's domain
DOMAIN = {
    "logit": np.linspace(-6, 6, 25), "probit": np.linspace(-4, 4, 25),
    "cloglog": np.linspace(-4, 2, 25), "log": np.linspace(-3, 3, 25),
    "inverse": np.linspace(0.2, 5, 25), "identity": np.linspace(-3, 3, 25),
    "1/mu^2": np.linspace(0.2, 5, 25),
}


@pytest.mark.parametrize("name", list(LINKS))
def test_link_inverts_and_derivative_matches_finite_differences(name):
    link = get_link(name)
    eta = DOMAIN[name]
    np.testing.assert_allclose(link.linkfun(link.linkinv(eta)), eta, rtol=1e-9, atol=1e-9)
    h = 1e-6
    numeric = (link.linkinv(eta + h) - link.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), numeric, rtol=1e-6, atol=1e-9)


def test_link_names_aliases_and_errors():
    assert get_link("inverse_squared").name == "1/mu^2"
    with pytest.raises(ValueError, match="valid links: logit, probit"):
        get_link("logitt")
    with pytest.raises(ValueError, match="valid links: logit, probit, cloglog, log"):
        get_family("binomial", "inverse")
    with pytest.raises(ValueError, match="valid families: binomial, poisson"):
        get_family("bernoulli")
    with pytest.raises(ValueError, match="theta"):
        get_family("negbinomial")


def test_defaults_as_r():
    assert get_family("binomial").link.name == "logit"
    assert get_family("poisson").link.name == "log"
    assert get_family("Gamma").link.name == "inverse"
    assert get_family("inverse_gaussian").link.name == "1/mu^2"
    assert get_family("negbinomial", theta=2.0).link.name == "log"
    fam = get_family("binomial")
    assert get_family(fam) is fam and get_family(fam, "probit").link.name == "probit"
    assert not Gamma().fixed_dispersion and Binomial().fixed_dispersion


def test_bounded_links_keep_means_inside():
    for name in ("logit", "probit", "cloglog"):
        mu = get_link(name).linkinv(np.array([-1e3, 1e3]))
        assert 0 < mu[0] < mu[1] < 1
        assert np.all(get_link(name).mu_eta(np.array([-1e3, 1e3])) > 0)


RNG = np.random.default_rng(3)


def test_binomial_loglik_matches_scipy():
    m = RNG.integers(1, 12, 40).astype(float)
    k = RNG.binomial(m.astype(int), 0.4).astype(float)
    mu = RNG.uniform(0.05, 0.95, 40)
    ll = Binomial().loglik(k / m, mu, m)
    np.testing.assert_allclose(ll, stats.binom.logpmf(k, m, mu), rtol=1e-12)
    y01 = (k > 2).astype(float)
    np.testing.assert_allclose(Binomial().loglik(y01, mu), stats.bernoulli.logpmf(y01, mu))


def test_poisson_and_negbin_loglik_match_scipy():
    y = RNG.poisson(3, 50).astype(float)
    mu = RNG.uniform(0.5, 6, 50)
    np.testing.assert_allclose(Poisson().loglik(y, mu), stats.poisson.logpmf(y, mu), rtol=1e-12)
    th = 1.7
    np.testing.assert_allclose(NegativeBinomial(th).loglik(y, mu),
                               stats.nbinom.logpmf(y, th, th / (th + mu)), rtol=1e-12)


def test_gamma_and_inverse_gaussian_loglik_match_scipy():
    y = RNG.gamma(2.0, 1.5, 30)
    mu = RNG.uniform(1, 5, 30)
    phi = 0.4
    np.testing.assert_allclose(Gamma().loglik(y, mu, None, phi),
                               stats.gamma.logpdf(y, 1 / phi, scale=mu * phi), rtol=1e-12)
    # inverse Gaussian with mean mu and variance phi mu^3: scipy's invgauss(mu*lam... )
    lam = 1 / phi
    np.testing.assert_allclose(InverseGaussian().loglik(y, mu, None, phi),
                               stats.invgauss.logpdf(y, mu / lam, scale=lam), rtol=1e-10)


@pytest.mark.parametrize("fam, y, mu", [
    (Binomial(), np.array([0.0, 1.0, 0.3]), np.array([0.2, 0.7, 0.5])),
    (Poisson(), np.array([0.0, 2.0, 5.0]), np.array([1.0, 2.5, 3.0])),
    (Gamma("log"), np.array([0.5, 2.0, 5.0]), np.array([1.0, 2.5, 3.0])),
    (InverseGaussian(), np.array([0.5, 2.0, 5.0]), np.array([1.0, 2.5, 3.0])),
    (NegativeBinomial(2.5), np.array([0.0, 2.0, 5.0]), np.array([1.0, 2.5, 3.0])),
])
def test_deviance_is_twice_the_loglik_gap_to_the_saturated_model(fam, y, mu):
    # unit deviance = 2 (l(y; y) - l(y; mu)) at dispersion 1
    wt = np.array([1.0, 1.0, 10.0]) if isinstance(fam, Binomial) else None
    sat = fam.loglik(y, np.clip(y, 1e-300, None), wt)
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt), 2 * (sat - fam.loglik(y, mu, wt)),
                               rtol=1e-10, atol=1e-12)
    r = fam.deviance_residuals(y, mu, wt)
    np.testing.assert_allclose(r**2, fam.dev_resids(y, mu, wt))
    assert np.all(np.sign(r) == np.sign(y - mu))


def test_variances_and_starts():
    mu = np.array([0.5, 2.0])
    assert np.allclose(NegativeBinomial(2.0).variance(mu), mu + mu**2 / 2)
    assert np.allclose(InverseGaussian().variance(mu), mu**3)
    fam = Binomial()
    start = fam.mustart(np.array([0.0, 1.0]), np.array([1.0, 4.0]))
    assert np.all((start > 0) & (start < 1))


def test_validation_messages():
    with pytest.raises(DataError, match="successes exceed trials"):
        Binomial().validate(np.array([0.5, 1.5]), np.array([2.0, 2.0]))
    with pytest.raises(DataError, match="values above 1"):
        Binomial().validate(np.array([0.0, 3.0]))
    with pytest.raises(DataError, match="negative values at row 1"):
        Binomial().validate(np.array([0.0, -1.0]))
    with pytest.raises(DataError, match="whole numbers of successes"):
        Binomial().validate(np.array([0.5, 0.3]), np.array([2.0, 2.0]))
    with pytest.raises(DataError, match="non-negative counts; negative values at row 2"):
        Poisson().validate(np.array([1.0, 0.0, -2.0]))
    with pytest.raises(DataError, match="non-integer values at row 0"):
        Poisson().validate(np.array([1.5, 2.0]))
    with pytest.raises(DataError, match="must be positive"):
        Gamma().validate(np.array([1.0, 0.0]))
    with pytest.raises(DataError, match="prior weights"):
        Poisson().validate(np.array([1.0]), np.array([-1.0]))
    Binomial().validate(np.array([0.5, 1.0]), np.array([2.0, 3.0]))  # fine
    NegativeBinomial(1.0).validate(np.array([0.0, 4.0]))
