"""Newton polish of a derivative-free optimum (``control={"polish": True}``).

A derivative-free optimizer stops anywhere within its step tolerance of the optimum, and which
point it stops at depends on rounding: two evaluations of the same objective that differ by
1e-15 relative (a different summation order, in memory or out of core) send it along different
paths that end ~1e-7 apart. A Newton iteration from that point converges instead to the zero of
the finite-difference gradient, a point fixed by the objective itself, so both runs end at the
same estimates up to the gradient's rounding noise (noise / step / curvature).

The gradient is central and fourth-order, (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h at
h = 1e-3 max(1, |x_i|): its truncation (~h^4) is negligible and its rounding noise (~1e-12 /
h on an LMM criterion of 5000) is ten times below the second-order formula's at 1e-4, whose
h^2 f'''/6 error moved the converged theta by 1.5e-8 (measured on the models of
tests/test_outofcore.py; fourth-order at 3e-4 and 1e-3 agree to 4e-11). Next to a bound it
is second-order one-sided at a tenth of the step. The Hessian is computed once, with
diagonal from the same points and forward off-diagonal differences (error O(h)): it only
sets the rate of convergence (a factor ~1e-3 per step), not the point converged to, and is
reused for the later steps. Coordinates next to a bound whose one-sided derivative pushes
them outward are held fixed (the active set). A step is taken only if the objective does not
increase (beyond its rounding noise, for steps too small for values to resolve; else it is
halved, then the polish stops), so the result is never worse than the start and never
leaves the bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

STEP = 1e-3  # relative finite-difference step of the fourth-order central gradient
ONE_SIDED = 0.1  # steps of one-sided (second-order) differences next to a bound, relative
MAX_ITER = 3
XTOL = 1e-10
MAX_HALVINGS = 2
ORDER = 4
NOISE = 1e-14  # rounding noise of the objective, relative (measured ~3e-16 on an LMM criterion)


@dataclass(frozen=True)
class PolishInfo:
    """What a polish did.

    Attributes
    ----------
    feval : int
        Objective evaluations used by the polish.
    steps : int
        Newton steps taken (accepted).
    step_norm : float
        Largest coordinate of the last Newton step computed, relative to max(1, |x_i|)
        (taken or not; below ``xtol`` when converged).
    status : str
        ``"converged"`` (step below ``xtol``), ``"max_iter"``, ``"no_decrease"`` (a step and
        its halvings did not lower the objective), ``"indefinite"`` (the Hessian on the free
        coordinates is not positive definite), ``"all_active"`` (every coordinate held at a
        bound) or ``"nonfinite"`` (the objective or its derivatives are not finite).
    active : tuple of int
        Coordinates held at a bound in the last step.
    decrease : float
        Objective at the start minus objective at the end (>= 0).
    """

    feval: int
    steps: int
    step_norm: float
    status: str
    active: tuple[int, ...]
    decrease: float


class _Counted:
    """The objective with a call count; non-finite values become +inf."""

    def __init__(self, fun: Callable[[np.ndarray], float]) -> None:
        self.fun, self.n = fun, 0

    def __call__(self, x: np.ndarray) -> float:
        self.n += 1
        value = float(self.fun(np.array(x, dtype=float)))
        return value if np.isfinite(value) else np.inf


def _stencils(x: np.ndarray, h: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per coordinate: central (room for ``order // 2`` steps each side) or one-sided; the
    direction of the one-sided points (+1 up, -1 down, 0 when the box is too narrow: the
    coordinate is then held); and the steps, ``h`` for central coordinates and
    ``ONE_SIDED * h`` for one-sided ones, whose O(h^2) error would otherwise dominate."""
    up_room, down_room = upper - x, x - lower
    reach = (order // 2) * h
    central = (up_room >= reach) & (down_room >= reach)
    h = np.where(central, h, ONE_SIDED * h)
    direction = np.where(up_room >= 2 * h, 1.0, np.where(down_room >= 2 * h, -1.0, 0.0))
    direction = np.where(central, 1.0, direction)
    return central, direction, h


def _gradient(f: _Counted, x: np.ndarray, f0: float, h: np.ndarray, central: np.ndarray,
              direction: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient, the diagonal of the Hessian and f at x + direction * h e_i. Central
    coordinates: error O(h^order) (order 2: f(x +- h); order 4: also f(x +- 2h)); one-sided
    ones (next to a bound): O(h^2) gradient from f(x + s h), f(x + 2 s h)."""
    n = len(x)
    g, hdiag, f_side = np.zeros(n), np.zeros(n), np.full(n, f0)
    for i in range(n):
        if direction[i] == 0:
            continue
        e = np.zeros(n)
        e[i] = h[i]
        if central[i]:
            fp, fm = f(x + e), f(x - e)
            if order == 4:
                fp2, fm2 = f(x + 2 * e), f(x - 2 * e)
                g[i] = (fm2 - 8 * fm + 8 * fp - fp2) / (12 * h[i])
                hdiag[i] = (-fp2 + 16 * fp - 30 * f0 + 16 * fm - fm2) / (12 * h[i] ** 2)
            else:
                g[i] = (fp - fm) / (2 * h[i])
                hdiag[i] = (fp - 2 * f0 + fm) / h[i] ** 2
            f_side[i] = fp
        else:
            s = direction[i]
            f1, f2 = f(x + s * e), f(x + 2 * s * e)
            g[i] = s * (-3 * f0 + 4 * f1 - f2) / (2 * h[i])
            hdiag[i] = (f0 - 2 * f1 + f2) / h[i] ** 2
            f_side[i] = f1
    return g, hdiag, f_side


def _hessian(f: _Counted, x: np.ndarray, f0: float, h: np.ndarray, direction: np.ndarray,
             hdiag: np.ndarray, f_side: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Hessian on the free coordinates: the diagonal given, off-diagonal entries by forward
    differences along each coordinate's stencil direction (one evaluation per pair)."""
    H = np.diag(hdiag)
    idx = np.flatnonzero(free)
    for a, i in enumerate(idx):
        for j in idx[:a]:
            z = x.copy()
            z[i] += direction[i] * h[i]
            z[j] += direction[j] * h[j]
            H[i, j] = H[j, i] = ((f(z) - f_side[i] - f_side[j] + f0)
                                 / (direction[i] * direction[j] * h[i] * h[j]))
    return H


def polish(fun: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray | None = None,
           upper: np.ndarray | None = None, *, fx: float | None = None, step: float = STEP,
           max_iter: int = MAX_ITER, xtol: float = XTOL, max_halvings: int = MAX_HALVINGS,
           noise: float = NOISE, order: int = ORDER) -> tuple[np.ndarray, float, PolishInfo]:
    """A few Newton steps with finite-difference derivatives from a near-optimal ``x``.

    Parameters
    ----------
    fun : callable
        Objective; may return ``inf`` where it is undefined.
    x : numpy.ndarray
        Start (the optimizer's best point), within the bounds.
    lower, upper : numpy.ndarray, optional
        Bounds (``-inf`` / ``inf`` for none; default unbounded).
    fx : float, optional
        ``fun(x)`` if known (the optimizer's best value); the polish evaluates ``fun(x)``
        afresh for its own comparisons and returns ``fx`` unchanged if it takes no step.
    step : float
        Finite-difference step relative to max(1, |x_i|) (one-sided differences next to a
        bound use a tenth of it).
    order : {4, 2}
        Order of the central gradient: 4 (f(x +- h), f(x +- 2h)) or 2 (f(x +- h) only,
        half the evaluations; use a smaller step, ~1e-4, for its O(h^2) error).
    max_iter : int
        Newton steps at most (the first computes the Hessian, the rest reuse it).
    xtol : float
        Stop when no coordinate of the Newton step exceeds ``xtol * max(1, |x_i|)``.
    max_halvings : int
        Halvings of a step that does not lower the objective before giving up.
    noise : float
        Rounding noise of the objective relative to max(1, |f|). A step whose predicted
        decrease (its quadratic model's) exceeds it must lower the objective; a smaller one
        is below what comparisons of values can verify, so it is taken unless it raises the
        objective by more than the noise. The result is never above the start's value plus
        this noise.

    Returns
    -------
    x : numpy.ndarray
        The polished point (the input if no step lowered the objective).
    fx : float
        The objective there.
    info : PolishInfo

    Raises
    ------
    ValueError
        If ``x`` is outside the bounds.
    """
    x0 = np.array(x, dtype=float)
    n = len(x0)
    lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, float)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    if np.any(x0 < lower) or np.any(x0 > upper):
        bad = int(np.flatnonzero((x0 < lower) | (x0 > upper))[0])
        raise ValueError(f"polish: the start's coordinate {bad} ({x0[bad]:.6g}) is outside "
                         f"its bounds [{lower[bad]:.6g}, {upper[bad]:.6g}]")
    if order not in (2, 4):
        raise ValueError(f"polish: order must be 2 or 4, not {order}")
    f = _Counted(fun)
    f_start = f(x0)
    x_cur, f_cur = x0, f_start
    H, H_free, steps, step_norm, status = None, None, 0, np.inf, "max_iter"
    active = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        if not np.isfinite(f_cur):
            status = "nonfinite"
            break
        h = step * np.maximum(1.0, np.abs(x_cur))
        central, direction, h = _stencils(x_cur, h, lower, upper, order)
        g, hdiag, f_side = _gradient(f, x_cur, f_cur, h, central, direction, order)
        # held: no room for a stencil, or one-sided and the objective does not fall inward
        # by more than its rounding noise (a flat direction at a bound stays there)
        g_noise = noise * max(1.0, abs(f_cur)) / h
        active = (direction == 0) | (~central & (direction * g >= -g_noise))
        free = ~active
        if not free.any():
            status = "all_active"
            break
        if H is None or np.any(free & ~H_free):  # once, or again for newly free coordinates
            H, H_free = _hessian(f, x_cur, f_cur, h, direction, hdiag, f_side, free), free
        gF, HF = g[free], H[np.ix_(free, free)]
        if not (np.all(np.isfinite(gF)) and np.all(np.isfinite(HF))):
            status = "nonfinite"
            break
        try:
            C = np.linalg.cholesky(HF)
        except np.linalg.LinAlgError:
            status = "indefinite"
            break
        d = np.zeros(n)
        d[free] = -np.linalg.solve(C.T, np.linalg.solve(C, gF))
        step_norm = float(np.max(np.abs(d) / np.maximum(1.0, np.abs(x_cur))))
        if step_norm <= xtol:
            status = "converged"
            break
        tol = noise * max(1.0, abs(f_cur))
        for _ in range(max_halvings + 1):
            x_try = np.clip(x_cur + d, lower, upper)
            dx = (x_try - x_cur)[free]
            predicted = -(gF @ dx + 0.5 * dx @ HF @ dx)
            f_try = f(x_try)
            if f_try <= f_cur or (predicted <= tol and f_try <= f_cur + tol):
                break
            d /= 2
        else:
            status = "no_decrease"
            break
        x_cur, f_cur, steps = x_try, f_try, steps + 1
    # the value at x0 may also depend on a warm start (GLMM): compare with the lower one
    f_ref = f_start if fx is None else min(f_start, float(fx))
    if steps and f_cur > f_ref + noise * max(1.0, abs(f_ref)):
        steps, status = 0, "no_decrease"
    info = PolishInfo(feval=f.n, steps=steps, step_norm=step_norm, status=status,
                      active=tuple(int(i) for i in np.flatnonzero(active)),
                      decrease=max(float(f_ref - f_cur), 0.0) if steps else 0.0)
    if not steps:
        return x0, (f_start if fx is None else float(fx)), info
    return x_cur, f_cur, info


def central_hessian(fun: Callable[[np.ndarray], float], x: np.ndarray,
                    step: float | np.ndarray) -> np.ndarray:
    """Finite-difference Hessian with O(h^2) error: 1 + n + n^2 evaluations.

    Diagonal (f(x+h_i) - 2 f(x) + f(x-h_i)) / h_i^2; off-diagonal from the axis points and two
    more per pair, (f(x+h_i+h_j) - f(x+h_i) - f(x+h_j) + 2 f(x) - f(x-h_i) - f(x-h_j) +
    f(x-h_i-h_j)) / (2 h_i h_j) (symmetric, so odd-order errors cancel; four-point central
    differences need 2n^2 evaluations). In coordinates where the objective's curvature is
    O(1) (units of standard errors), a step of 5e-2 leaves rounding noise of ~1e-12 / h^2
    and truncation of ~h^2 times the fourth derivative: both far below forward differences'
    O(h) at 1e-4.

    Parameters
    ----------
    fun : callable
    x : numpy.ndarray
    step : float or numpy.ndarray
        Absolute step per coordinate.
    """
    x = np.asarray(x, float)
    n = len(x)
    E = np.diag(np.broadcast_to(np.asarray(step, float), (n,)))
    h = np.diag(E)
    f0 = float(fun(x))
    fp = np.array([float(fun(x + E[i])) for i in range(n)])
    fm = np.array([float(fun(x - E[i])) for i in range(n)])
    H = np.diag((fp - 2 * f0 + fm) / h**2)
    for i in range(n):
        for j in range(i):
            f_pp, f_mm = float(fun(x + E[i] + E[j])), float(fun(x - E[i] - E[j]))
            H[i, j] = H[j, i] = ((f_pp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + f_mm)
                                 / (2 * h[i] * h[j]))
    return H
