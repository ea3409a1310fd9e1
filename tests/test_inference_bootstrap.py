"""Simulation from a fit and the parametric bootstrap: reproducibility, parallel equality,
agreement with the model's moments and with profile intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets
from mixedfx.design.reterm import theta_to_factor
from mixedfx.errors import MixedFXError
from mixedfx.inference.bootstrap import percentile_endpoints
from tests.conftest import load_reference


@pytest.fixture(scope="module")
def fit():
    return mixedfx.lmm("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def boot(fit):
    return fit.bootstrap(100, seed=11, progress=False)


def test_simulate_is_reproducible(fit):
    a = fit.simulate(3, seed=42)
    assert list(a.columns) == ["sim_1", "sim_2", "sim_3"] and len(a) == fit.nobs
    np.testing.assert_array_equal(a.to_numpy(), fit.simulate(3, seed=42).to_numpy())
    # simulation j does not depend on how many are drawn
    np.testing.assert_array_equal(a.sim_1.to_numpy(), fit.simulate(1, seed=42).sim_1)
    assert not np.allclose(a.to_numpy(), fit.simulate(3, seed=43).to_numpy())


def test_simulate_has_the_model_moments(fit):
    sims = fit.simulate(2000, seed=1).to_numpy()
    model = fit.model
    mean = model.X @ fit.fixef.to_numpy()
    T = theta_to_factor(fit.theta, 2)
    Z = model.terms[0].Z
    var = fit.sigma**2 * (1 + np.einsum("ia,ab,ib->i", Z, T @ T.T, Z))
    sd_of_mean = np.sqrt(var / sims.shape[1])
    assert np.max(np.abs(sims.mean(axis=1) - mean) / sd_of_mean) < 5
    np.testing.assert_allclose(sims.var(axis=1, ddof=1), var, rtol=0.15)
    # two observations of one subject are correlated as the model says
    i, j = 0, 9  # Subject 308, Days 0 and 9
    cov = fit.sigma**2 * Z[i] @ T @ T.T @ Z[j]
    assert np.cov(sims[i], sims[j])[0, 1] == pytest.approx(cov, rel=0.2)


def test_bootstrap_same_seed_same_result(fit, boot):
    again = fit.bootstrap(100, seed=11, progress=False)
    np.testing.assert_array_equal(boot.replicates.to_numpy(), again.replicates.to_numpy())
    other = fit.bootstrap(5, seed=12, progress=False)
    assert not np.allclose(other.replicates.to_numpy(), boot.replicates.to_numpy()[:5])


def test_bootstrap_replicate_is_the_refit_of_the_simulation(fit, boot):
    y = fit.simulate(3, seed=11).sim_3.to_numpy()
    refit = fit.model.with_response(y).fit()
    row = boot.replicates.iloc[2]
    assert row["Days"] == pytest.approx(refit.fixef["Days"], rel=1e-12)
    assert row["sigma"] == pytest.approx(refit.sigma, rel=1e-12)


def test_parallel_equals_serial(fit):
    serial = fit.bootstrap(12, seed=3, n_jobs=1, progress=False)
    parallel = fit.bootstrap(12, seed=3, n_jobs=2, progress=False)
    np.testing.assert_array_equal(serial.replicates.to_numpy(), parallel.replicates.to_numpy())
    np.testing.assert_array_equal(serial.converged, parallel.converged)


def test_bootstrap_intervals_near_profile_intervals(fit, boot):
    ci = fit.confint(method="bootstrap", nsim=100, seed=11)
    np.testing.assert_allclose(ci.to_numpy(), boot.confint().to_numpy())
    prof = fit.confint(method="profile")
    assert list(ci.index) == list(prof.index)
    width = (prof.upper - prof.lower).to_numpy()
    for col in ("lower", "upper"):
        diff = np.abs(ci[col].to_numpy() - prof[col].to_numpy()) / width
        assert np.all(diff < 0.35), (col, diff)
    est = boot.estimates
    assert np.all((ci.lower.to_numpy() < est.to_numpy()) & (est.to_numpy() < ci.upper.to_numpy()))
    assert boot.converged.all() and boot.n == 100
    s = boot.summary()
    assert s.loc["Days", "std_error"] == pytest.approx(fit.se["Days"], rel=0.3)
    json.dumps(boot.to_dict())


def test_progress_bar_on_stderr(fit, capsys):
    fit.bootstrap(3, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap 3/3" in err and err.endswith("\n")


def test_bad_input(fit):
    with pytest.raises(MixedFXError, match="n must be a positive integer"):
        fit.bootstrap(0)
    with pytest.raises(MixedFXError, match="n_jobs"):
        fit.bootstrap(2, n_jobs=0)
    with pytest.raises(MixedFXError, match="nsim"):
        fit.simulate(0)


def _ar1_panel(subjects: int = 40, times: int = 6, phi: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    e = np.empty((subjects, times))
    e[:, 0] = rng.normal(size=subjects)
    for t in range(1, times):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=subjects)
    y = 2.0 + 0.7 * rng.normal(size=(subjects, 1)) + e
    return pd.DataFrame({"y": y.ravel(), "subj": np.repeat(np.arange(subjects), times),
                         "t": np.tile(np.arange(times), subjects)})


def test_simulate_with_residual_correlation():
    res = mixedfx.lmm("y ~ 1 + (1 | subj)", _ar1_panel(), correlation=mixedfx.AR1(group="subj"))
    phi = res.residual_params["Phi"]
    assert 0.3 < phi < 0.9
    dev = res.simulate(3000, seed=4).to_numpy() - res.fixef.iloc[0]
    tau2, s2 = (res.sigma * res.theta[0]) ** 2, res.sigma**2
    for lag in (1, 2):  # rows 0, 1, 2 are times 0, 1, 2 of subject 0
        expected = tau2 + s2 * phi**lag
        assert np.cov(dev[0], dev[lag])[0, 1] == pytest.approx(expected, rel=0.15)
    assert dev[0].var() == pytest.approx(tau2 + s2, rel=0.1)
    assert np.cov(dev[0], dev[6])[0, 1] == pytest.approx(0, abs=0.15 * (tau2 + s2))  # subject 1
    boot = res.bootstrap(8, seed=1, progress=False)
    assert list(boot.replicates.columns)[-1] == "Phi"
    assert boot.replicates["Phi"].notna().all()


def test_simulate_with_variance_function():
    ortho = datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", ortho,
                      variance=mixedfx.VarIdent("Sex"))
    ratio = res.residual_params["Female"] / res.residual_params["Male"]
    sims = res.simulate(2000, seed=2).to_numpy()
    # within-subject differences remove the random intercept: their variance is 2 sigma_s^2
    female = (ortho.Sex == "Female").to_numpy()
    d = np.diff(sims, axis=0)[np.flatnonzero(female[:-1] & female[1:]
                                             & (ortho.Subject.to_numpy()[:-1]
                                                == ortho.Subject.to_numpy()[1:]))]
    m = np.diff(sims, axis=0)[np.flatnonzero(~female[:-1] & ~female[1:]
                                             & (ortho.Subject.to_numpy()[:-1]
                                                == ortho.Subject.to_numpy()[1:]))]
    assert np.sqrt(d.var() / m.var()) == pytest.approx(ratio, rel=0.05)


def test_percentile_endpoints_match_boot():
    """boot's norm.inter (lme4's confint(method="boot") percentile endpoints)."""
    for case in load_reference("bootstrap_refs")["cases"]:
        a = (1 - case["level"]) / 2
        got = percentile_endpoints(np.array(case["t"]), (a, 1 - a))
        np.testing.assert_allclose(got, [case["lower"], case["upper"]], rtol=1e-12)


def test_confint_kinds(boot):
    perc = boot.confint()
    quant = boot.confint(kind="quantile")
    width = (perc.upper - perc.lower).to_numpy()
    assert np.all(np.abs(perc.to_numpy() - quant.to_numpy()) < 0.1 * width[:, None])
    with pytest.raises(MixedFXError, match="unknown kind"):
        boot.confint(kind="bca")


def test_falls_back_to_one_process_when_workers_cannot_start(fit, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import mixedfx.inference.bootstrap as bs

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise BrokenProcessPool("workers died")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(bs, "ProcessPoolExecutor", Broken)
    with pytest.warns(RuntimeWarning, match="could not start"):
        got = fit.bootstrap(4, seed=9, n_jobs=2, progress=False)
    serial = fit.bootstrap(4, seed=9, progress=False)
    np.testing.assert_array_equal(got.replicates.to_numpy(), serial.replicates.to_numpy())
