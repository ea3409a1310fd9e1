"""Residual structures beyond nlme: crossed random effects with AR(1) residuals, checked
against a dense brute-force likelihood; recovery of known parameters by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx


def crossed_panel(seed: int = 7, subjects: int = 40, times: int = 15, items: int = 25,
                  phi: float = 0.6) -> pd.DataFrame:
    """Subjects measured over time, each time on a random item (items crossed with
    subjects); AR(1) errors within subject."""
    rng = np.random.default_rng(seed)
    e = np.empty((subjects, times))
    e[:, 0] = rng.normal(size=subjects)
    for t in range(1, times):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=subjects)
    item = rng.integers(items, size=(subjects, times))
    x = rng.normal(size=(subjects, times))
    y = (1.0 + 0.4 * x + 0.8 * rng.normal(size=(subjects, 1)) + 0.6 * rng.normal(size=items)[item]
         + 1.2 * e)
    frame = pd.DataFrame({"y": y.ravel(), "x": x.ravel(),
                          "subj": np.repeat(np.arange(subjects), times),
                          "t": np.tile(np.arange(times), subjects),
                          "item": [f"i{k:02d}" for k in item.ravel()]})
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)  # rows in any order


def dense_check(res: mixedfx.LmmResult, data: pd.DataFrame, groups: list[str]) -> None:
    """Log-likelihood, beta and its covariance from V = sum_k s_k^2 Z_k Z_k' + sigma^2 R,
    R = phi^|t_i - t_j| within subject, built densely."""
    n = len(data)
    sd = res.varcorr.set_index("group").vcov
    V = np.zeros((n, n))
    for g in groups:
        codes = pd.factorize(data[g])[0]
        V += sd[g] * (codes[:, None] == codes[None, :])
    same = data.subj.to_numpy()[:, None] == data.subj.to_numpy()[None, :]
    lag = np.abs(data.t.to_numpy()[:, None] - data.t.to_numpy()[None, :])
    V += res.sigma**2 * np.where(same, res.residual_params["Phi"] ** lag, 0.0)
    X = np.column_stack([np.ones(n), data.x.to_numpy()])
    y = data.y.to_numpy()
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    logdet = np.linalg.slogdet(V)[1]
    if res.reml:
        ll = -0.5 * ((n - 2) * np.log(2 * np.pi) + logdet + np.linalg.slogdet(XtViX)[1]
                     + r @ Vi @ r)
    else:
        ll = -0.5 * (n * np.log(2 * np.pi) + logdet + r @ Vi @ r)
    assert res.loglik == pytest.approx(ll, abs=1e-6)
    np.testing.assert_allclose(res.fixef.to_numpy(), beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.vcov.to_numpy(), np.linalg.inv(XtViX), rtol=1e-6)


def assert_local_optimum(res: mixedfx.LmmResult, step: float = 1e-3) -> None:
    """The criterion does not decrease along any coordinate of [theta, atanh(phi)]."""
    model = res.model
    x = np.concatenate([res.theta, [np.arctanh(res.residual_params["Phi"])]])
    f0 = model.objective(x)
    assert f0 == pytest.approx(res.objective, abs=1e-8)
    for k in range(len(x)):
        for h in (-step, step):
            xk = x.copy()
            xk[k] += h
            assert model.objective(xk) >= f0 - 1e-7


@pytest.mark.parametrize("reml", [True, False])
def test_crossed_random_effects_with_ar1(reml):
    data = crossed_panel()
    res = mixedfx.lmm("y ~ x + (1 | subj) + (1 | item)", data, reml=reml,
                      correlation=mixedfx.AR1(group="subj", time="t"))
    assert res.converged
    assert res.ngroups == {"subj": 40, "item": 25}
    assert res.npar == 2 + 2 + 1 + 1
    dense_check(res, data, ["subj", "item"])
    assert_local_optimum(res)
    # the whitened item term touches several items per row: it is carried in the remainder
    assert res.model.terms[res.model.perm[0]].group == "subj"


def test_no_term_compatible_with_the_residual_groups():
    """AR(1) within subject, but the only random term is the crossed item factor."""
    data = crossed_panel(seed=11)
    res = mixedfx.lmm("y ~ x + (1 | item)", data, correlation=mixedfx.AR1(group="subj",
                                                                         time="t"))
    assert res.model.dummy
    dense_check(res, data, ["item"])
    assert_local_optimum(res)


def test_ar1_row_order_equals_time_order_when_sorted():
    data = crossed_panel().sort_values(["subj", "t"]).reset_index(drop=True)
    by_time = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.AR1("subj", "t"))
    by_row = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.AR1("subj"))
    assert by_row.loglik == pytest.approx(by_time.loglik, abs=1e-9)
    # shuffling the rows changes nothing when the time column gives the order
    shuffled = mixedfx.lmm("y ~ x + (1 | subj)", data.sample(frac=1, random_state=1),
                           correlation=mixedfx.AR1("subj", "t"))
    assert shuffled.loglik == pytest.approx(by_time.loglik, abs=1e-7)


def test_ar1_with_gaps_equals_car1_on_integer_times():
    data = crossed_panel(seed=5)
    data = data[data.t % 4 != 1].reset_index(drop=True)  # gaps of 2 in the series
    ar1 = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.AR1("subj", "t"))
    car1 = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.CAR1("subj", "t"))
    assert ar1.residual_params["Phi"] > 0
    assert car1.loglik == pytest.approx(ar1.loglik, abs=1e-5)
    assert car1.residual_params["Phi"] == pytest.approx(ar1.residual_params["Phi"], rel=1e-4)


def simulate_panel(seed: int, subjects: int = 100, times: int = 20, phi: float = 0.5,
                   sd_subject: float = 1.0, sigma: float = 1.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    e = np.empty((subjects, times))
    e[:, 0] = rng.normal(size=subjects)
    for t in range(1, times):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=subjects)
    x = rng.normal(size=(subjects, times))
    y = 2.0 + 0.5 * x + sd_subject * rng.normal(size=(subjects, 1)) + sigma * e
    return pd.DataFrame({"y": y.ravel(), "x": x.ravel(),
                         "subj": np.repeat(np.arange(subjects), times),
                         "t": np.tile(np.arange(times), subjects)})


def test_simulation_recovers_phi_and_variances():
    """20 seeded replicates of 2,000 rows: the mean estimates of Phi, the subject variance
    and the residual variance lie within 3 Monte Carlo standard errors of the truth."""
    truth = np.array([0.5, 1.0, 1.5**2])
    est = []
    for seed in range(20):
        res = mixedfx.lmm("y ~ x + (1 | subj)", simulate_panel(seed),
                          correlation=mixedfx.AR1("subj", "t"))
        var = res.varcorr.set_index("group").vcov
        est.append([res.residual_params["Phi"], var["subj"], res.sigma**2])
    est = np.array(est)
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - truth) < 3 * se), (est.mean(axis=0), se)
    assert np.all(se < 0.05 * truth)  # the replicates are informative


def test_simulation_recovers_varident_ratio():
    rng = np.random.default_rng(1)
    n_subj, per = 60, 10
    subj = np.repeat(np.arange(n_subj), per)
    group = np.where(subj % 2 == 0, "a", "b")
    sd = np.where(group == "a", 1.0, 2.5)
    y = 1.0 + rng.normal(size=n_subj)[subj] + sd * rng.normal(size=len(subj))
    data = pd.DataFrame({"y": y, "subj": subj, "g": group})
    res = mixedfx.lmm("y ~ 1 + (1 | subj)", data, variance=mixedfx.VarIdent("g"))
    assert res.residual_params["a"] == 1.0
    assert res.residual_params["b"] == pytest.approx(2.5, rel=0.1)
    assert res.sigma == pytest.approx(1.0, rel=0.1)


def test_variance_function_with_prior_weights_matches_weights():
    """VarIdent with the ratio fixed by prior weights: weights w = 1/ratio^2 give the same
    likelihood surface, so fitting VarIdent on data with and without weights is consistent."""
    data = crossed_panel(seed=2)
    data["grp"] = np.where(data.subj < 20, "low", "high")
    w = np.where(data.grp == "low", 1.0, 0.25)
    fit_w = mixedfx.lmm("y ~ x + (1 | subj)", data, weights=w,
                        variance=mixedfx.VarIdent("grp", reference="low"))
    fit = mixedfx.lmm("y ~ x + (1 | subj)", data,
                      variance=mixedfx.VarIdent("grp", reference="low"))
    # weight 1/4 doubles the sd of "high": the estimated ratio halves, the fit is the same
    assert fit_w.residual_params["high"] == pytest.approx(fit.residual_params["high"] / 2,
                                                          rel=1e-4)
    assert fit_w.fixef.to_numpy() == pytest.approx(fit.fixef.to_numpy(), rel=1e-6)


def test_summary_and_to_dict_show_the_structures():
    o = mixedfx.datasets.load("Orthodont")
    res = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", o, correlation=mixedfx.AR1(),
                      variance=mixedfx.VarIdent("Sex"))
    text = res.summary()
    assert "Correlation Structure: AR(1)\n Formula: ~1 | Subject\n Parameter estimate(s):" in text
    phi = res.residual_params["Phi"]
    assert f"{phi:.6f}" in text
    assert "Variance function:\n Structure: Different standard deviations per stratum" in text
    assert " Formula: ~1 | Sex" in text
    assert text.index("Correlation Structure") < text.index("Fixed effects:")
    d = res.to_dict()
    assert d["residual_params"] == {"Phi": phi, "Male": 1.0,
                                    "Female": res.residual_params["Female"]}
    assert d["npar"] == 3 + 1 + 1 + 2
    assert res.aic == pytest.approx(-2 * res.loglik + 2 * 7)
    plain = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", o)
    assert "Correlation Structure" not in plain.summary()


def test_model_refits_with_the_other_criterion_and_a_new_response():
    data = crossed_panel(seed=4)
    reml = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.AR1("subj", "t"))
    ml = mixedfx.lmm("y ~ x + (1 | subj)", data, reml=False,
                     correlation=mixedfx.AR1("subj", "t"))
    refit = reml.model.with_reml(False).fit()
    assert refit.loglik == pytest.approx(ml.loglik, abs=1e-7)
    assert refit.residual_params["Phi"] == pytest.approx(ml.residual_params["Phi"], rel=1e-4)
    same = reml.model.with_response(data.y.to_numpy()).fit()
    assert same.loglik == pytest.approx(reml.loglik, abs=1e-7)
    shifted = reml.model.with_response(data.y.to_numpy() + 3.0).fit()
    assert shifted.fixef["(Intercept)"] == pytest.approx(reml.fixef["(Intercept)"] + 3.0,
                                                         rel=1e-6)


@pytest.mark.filterwarnings("ignore::mixedfx.SingularFitWarning")
@pytest.mark.parametrize("structure", [
    mixedfx.AR1("subj", "t"), mixedfx.CompSymm("subj"), mixedfx.CompSymm("pair")])
@pytest.mark.parametrize("formula", ["y ~ x + (1 | subj) + (1 | item)", "y ~ x + (x | item)"])
def test_gram_basis_equals_whitening(structure, formula):
    """Combining precomputed Gram pieces gives the criterion of whitening the data, for
    gaps in time, unequal group sizes, prior weights and terms crossed with the groups."""
    from mixedfx.residual.model import StructuredModel

    data = crossed_panel(seed=9)
    data = data[(data.t % 5 != 2) | (data.subj % 3 == 0)].reset_index(drop=True)
    data["pair"] = data.subj // 2  # groups of unequal sizes (some subjects lost rows)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(data))
    res = mixedfx.lmm(formula, data, weights=w, correlation=structure)
    fast = res.model
    assert fast.gram is not None
    slow = StructuredModel(fast.formula, fast.design, fast.reml, fast.correlation, [],
                           precompute=False)
    assert slow.gram is None
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = np.concatenate([res.theta * rng.uniform(0.5, 1.5, len(res.theta)),
                            rng.normal(scale=0.8, size=1)])
        assert fast.objective(x) == pytest.approx(slow.objective(x), rel=1e-10, abs=1e-8)
    at_fit = np.concatenate([res.theta, _unconstrained(res, fast)])
    assert res.loglik == pytest.approx(-slow.objective(at_fit) / 2, abs=1e-7)


def _unconstrained(res, model):
    """The fitted structure parameter on the optimizer's scale (by bisection on natural)."""
    from scipy.optimize import brentq

    target = next(iter(res.residual_params.values()))
    corr = model.correlation
    return np.array([brentq(lambda z: corr.natural(np.array([z]))[0] - target, -30, 30,
                            xtol=1e-14)])


def test_many_time_gaps_fall_back_to_whitening():
    data = crossed_panel(seed=3)
    data["t"] = data.t + np.random.default_rng(0).uniform(0, 0.5, len(data))
    res = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.CAR1("subj", "t"))
    assert res.model.gram is None and res.converged


def test_car1_on_dates_counts_days():
    data = crossed_panel(seed=6)
    data["day"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(data.t * 2, unit="D")
    data["t2"] = data.t * 2
    on_dates = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.CAR1("subj", "day"))
    on_days = mixedfx.lmm("y ~ x + (1 | subj)", data, correlation=mixedfx.CAR1("subj", "t2"))
    assert on_dates.loglik == pytest.approx(on_days.loglik, abs=1e-9)
    assert on_dates.residual_params["Phi"] == pytest.approx(on_days.residual_params["Phi"],
                                                            rel=1e-9)


def test_gram_basis_skipped_beyond_the_memory_bound(monkeypatch):
    import mixedfx.residual.model as model_module

    data = crossed_panel(seed=8)
    formula = "y ~ x + (1 | subj) + (1 | item)"
    with_basis = mixedfx.lmm(formula, data, correlation=mixedfx.AR1("subj", "t"))
    monkeypatch.setattr(model_module, "GRAM_MEMORY", 0)
    without = mixedfx.lmm(formula, data, correlation=mixedfx.AR1("subj", "t"))
    assert with_basis.model.gram is not None and without.model.gram is None
    assert without.loglik == pytest.approx(with_basis.loglik, abs=1e-6)
    assert without.residual_params["Phi"] == pytest.approx(
        with_basis.residual_params["Phi"], rel=1e-4)


def test_summary_of_varpower_and_compsymm():
    o = mixedfx.datasets.load("Orthodont")
    text = mixedfx.lmm("distance ~ age + (1 | Subject)", o,
                       variance=mixedfx.VarPower("age")).summary()
    assert "Variance function:\n Structure: Power of variance covariate\n Formula: ~age" in text
    assert "power" in text
    text = mixedfx.lmm("strength ~ 1 + (1 | batch)", mixedfx.datasets.load("Pastes"),
                       correlation=mixedfx.CompSymm("batch:cask")).summary()
    assert "Correlation Structure: Compound symmetry\n Formula: ~1 | batch:cask" in text
    assert "Rho" in text


def test_docs_example_runs_and_prints_what_the_page_shows(capsys):
    """docs/residual.md: its python block runs, and the summary holds the structure block
    the page prints, line for line."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "residual.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    exec(compile(code, "docs/residual.md", "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert "{'Phi': 0.6074" in out and "\n6 " in out
    shown = re.search(r"nlme's layout:\n\n```\n(.*?)```", page, flags=re.S).group(1)
    assert shown.strip().splitlines()[0] == "Correlation Structure: AR(1)"
    assert shown.strip() in out
