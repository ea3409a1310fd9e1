"""The Newton polish of a derivative-free optimum (``control={"polish": True}``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixedfx
from mixedfx.optimize import minimize, polish_optimum
from mixedfx.polish import polish

A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.4], [0.5, -0.4, 2.0]])
C = np.array([0.7, -1.3, 2.5])


def quadratic(x: np.ndarray) -> float:
    d = np.asarray(x) - C
    return float(0.5 * d @ A @ d + 3.0)


def test_quadratic_reaches_known_optimum():
    x0 = C + np.array([2e-3, -1e-3, 5e-4])
    x, fx, info = polish(quadratic, x0)
    np.testing.assert_allclose(x, C, rtol=0, atol=1e-9)
    assert fx == pytest.approx(3.0, abs=1e-14)
    assert info.status == "converged" and info.steps >= 1 and info.active == ()
    # Hessian once (1 + 2n + n(n-1)/2 + 1 trial), then gradients only
    assert 10 <= info.feval <= 40
    assert info.decrease == pytest.approx(quadratic(x0) - 3.0, rel=1e-6)


def test_far_start_still_lands_on_quadratic_optimum():
    x, _, info = polish(quadratic, C + 0.5)  # exact Newton for a quadratic: one step
    np.testing.assert_allclose(x, C, rtol=0, atol=1e-8)
    assert info.status == "converged"


def test_bound_active_coordinate_held():
    def f(x):  # unconstrained optimum (-1, 2); with x0 >= 0 the optimum is (0, 2)
        return float((x[0] + 1) ** 2 + (x[1] - 2) ** 2 + 0.3 * x[0] * (x[1] - 2))

    x, fx, info = polish(f, np.array([0.0, 2.001]), lower=np.array([0.0, -np.inf]))
    assert x[0] == 0.0
    assert x[1] == pytest.approx(2.0, abs=1e-9)
    assert info.active == (0,) and info.status == "converged"
    assert fx == pytest.approx(1.0, abs=1e-12)


def test_bound_coordinate_moves_inward_when_gradient_says_so():
    def f(x):
        return float((x[0] - 0.3) ** 2 + (x[1] - 1) ** 2)

    x, _, info = polish(f, np.array([0.0, 1.2]), lower=np.zeros(2))
    np.testing.assert_allclose(x, [0.3, 1.0], rtol=0, atol=1e-9)  # one-sided stencil at 0
    assert info.active == ()


def test_near_bound_with_outward_gradient_never_leaves_bounds():
    def f(x):  # minimum outside the box: the polish may reach the bound, never cross it
        return float((x[0] + 0.5) ** 2 + x[1] ** 2)

    lower, upper = np.array([1e-6, -1.0]), np.array([1.0, 1.0])
    x, fx, _ = polish(f, np.array([5e-5, 0.01]), lower, upper)
    assert np.all(x >= lower) and np.all(x <= upper)
    assert x[0] == 5e-5  # held where it was
    assert fx <= f(np.array([5e-5, 0.01]))


def test_uphill_newton_step_is_rejected():
    def f(x):  # convex, but Newton from x = 3 overshoots to -27 and its halvings too
        return float(np.sqrt(1 + x[0] ** 2))

    x0 = np.array([3.0])
    x, fx, info = polish(f, x0, fx=f(x0))
    assert info.status == "no_decrease" and info.steps == 0
    np.testing.assert_array_equal(x, x0)
    assert fx == f(x0)


def test_maximum_is_not_polished():
    x0 = np.array([0.01, -0.02])
    x, fx, info = polish(lambda x: float(-x @ x), x0)
    assert info.status == "indefinite"
    np.testing.assert_array_equal(x, x0)


def test_rough_objective_never_made_worse():
    """Finite differences of a rough function are meaningless; the value must not rise."""
    def f(x):
        return quadratic(x) + 1e-5 * float(np.sum(np.sin(1e6 * np.asarray(x))))

    for seed in range(5):
        x0 = C + np.random.default_rng(seed).normal(scale=1e-3, size=3)
        x, fx, _ = polish(f, x0)
        assert fx <= f(x0) + 1e-14 * abs(f(x0))
        assert f(x) == fx


def test_start_outside_bounds_is_an_error():
    with pytest.raises(ValueError, match=r"coordinate 1 \(-0\.5\) is outside its bounds"):
        polish(quadratic, np.array([1.0, -0.5, 0.0]), lower=np.array([0.0, 0.0, -np.inf]))


def test_polish_optimum_records_on_optsum():
    opt = minimize(quadratic, np.zeros(3), np.full(3, -np.inf), optimizer="newuoa",
                   xtol_abs=1e-4)
    assert opt.polish_status is None and opt.polish_feval == 0
    out = polish_optimum(opt, quadratic)
    assert out.polish_status == "converged" and out.polish_feval > 0
    assert out.polish_steps >= 1 and out.polish_step < 1e-10
    assert out.feval == opt.feval and out.fmin <= opt.fmin
    np.testing.assert_allclose(out.final, C, atol=1e-9)
    d = out.to_dict()
    assert d["polish_status"] == "converged" and d["polish_feval"] == out.polish_feval
    json.dumps(d)


@pytest.fixture(scope="module")
def sleep():
    return mixedfx.datasets.load("sleepstudy")


@pytest.mark.parametrize("optimizer", ["newuoa", "bobyqa"])
def test_lmm_polish_lowers_or_keeps_objective(sleep, optimizer, tmp_path):
    formula = "Reaction ~ Days + (Days | Subject)"
    plain = mixedfx.lmm(formula, sleep, optimizer=optimizer)
    res = mixedfx.lmm(formula, sleep, optimizer=optimizer, control={"polish": True})
    assert plain.optsum.polish_status is None
    assert res.optsum.polish_status == "converged"
    assert res.objective <= plain.objective + 1e-14 * plain.objective
    assert res.theta[0] > 0 and res.theta[2] > 0  # signs rectified after the polish
    np.testing.assert_allclose(res.theta, plain.theta, rtol=1e-4)
    assert res.model.objective(res.theta) == pytest.approx(res.objective, rel=1e-14)
    assert res.to_dict()["optsum"]["polish_steps"] == res.optsum.polish_steps
    from mixedfx.io import load, save

    assert load(save(res, tmp_path / "res.mfx.json")).optsum == res.optsum


def test_lmm_polish_keeps_zero_variance_at_its_bound():
    df = mixedfx.datasets.load("Dyestuff2")
    res = mixedfx.lmm("Yield ~ 1 + (1 | Batch)", df, optimizer="bobyqa",
                      control={"polish": True})
    assert res.theta[0] == 0.0 and res.singular
    assert res.optsum.polish_status == "all_active"


def test_residual_structure_fit_polished(sleep):
    plain = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep,
                        correlation=mixedfx.AR1(group="Subject"))
    res = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep,
                      correlation=mixedfx.AR1(group="Subject"), control={"polish": True})
    assert res.optsum.polish_status is not None and plain.optsum.polish_status is None
    assert res.objective <= plain.objective + 1e-14 * plain.objective
    assert res.residual_params == pytest.approx(plain.residual_params, rel=1e-3)


@pytest.mark.parametrize("n_agq", [0, 1])
def test_glmm_polish(n_agq):
    cbpp = mixedfx.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    plain = mixedfx.glmm(formula, cbpp, n_agq=n_agq)
    res = mixedfx.glmm(formula, cbpp, n_agq=n_agq, control={"polish": True})
    opt = res.optsum
    assert plain.optsum.polish_status is None
    assert opt.polish_status in ("converged", "max_iter") and opt.polish_steps > 0
    assert res.deviance <= plain.deviance + 1e-12 * plain.deviance
    np.testing.assert_allclose(res.fixef, plain.fixef, rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.se, plain.se, rtol=1e-4)
    if n_agq:
        assert res.vcov_method == "hessian"
    with pytest.raises(ValueError, match="use optimizer, .*polish"):
        mixedfx.glmm(formula, cbpp, control={"polsh": True})


def test_second_order_gradient_option():
    x, _, info = polish(quadratic, C + 1e-3, order=2, step=1e-4)
    np.testing.assert_allclose(x, C, rtol=0, atol=1e-9)  # exact for a quadratic
    assert info.feval < polish(quadratic, C + 1e-3)[2].feval
    with pytest.raises(ValueError, match="order must be 2 or 4"):
        polish(quadratic, C, order=3)


def test_fourth_order_gradient_removes_truncation_bias():
    """exp has f''' = f'': a second-order gradient at step h is off by ~h^2/6 relative, which
    moves its zero by that much; the fourth-order one lands on the optimum."""
    def f(x):
        return float(np.sum(np.exp(x) - 2 * x))  # minimum at log 2

    x0 = np.full(2, np.log(2) + 1e-3)
    x2, _, _ = polish(f, x0, order=2, step=1e-2)
    x4, _, _ = polish(f, x0, order=4, step=1e-2)
    assert np.max(np.abs(x2 - np.log(2))) > 1e-6
    assert np.max(np.abs(x4 - np.log(2))) < 1e-9
