"""Derivative-free optimization of the profiled deviance, with one record of the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import nlopt
import numpy as np

_STATUS = {
    nlopt.SUCCESS: "SUCCESS", nlopt.STOPVAL_REACHED: "STOPVAL_REACHED",
    nlopt.FTOL_REACHED: "FTOL_REACHED", nlopt.XTOL_REACHED: "XTOL_REACHED",
    nlopt.MAXEVAL_REACHED: "MAXEVAL_REACHED", nlopt.MAXTIME_REACHED: "MAXTIME_REACHED",
}
_CONVERGED = {"SUCCESS", "FTOL_REACHED", "XTOL_REACHED", "ROUNDOFF_LIMITED"}


@dataclass(frozen=True)
class OptSummary:
    """Record of one optimization (as MixedModels.jl's OptSummary).

    Attributes
    ----------
    optimizer : str
        ``"bobyqa"`` or ``"newuoa"``.
    initial, final : tuple of float
        Starting and best parameter vectors.
    fmin : float
        Best objective value seen.
    feval : int
        Number of objective evaluations.
    status : str
        nlopt's return status (``FTOL_REACHED``, ``MAXEVAL_REACHED``, ``ROUNDOFF_LIMITED``...).
    converged : bool
        Whether the status is a convergence status.
    seconds : float
        Wall time of the optimization (and of the polish, if any).
    ftol_rel, xtol_abs : float
        Stopping tolerances used.
    polish_status : str or None
        None without a polish (``control={"polish": True}``); else its outcome, as
        :class:`mixedfx.polish.PolishInfo`'s ``status`` (``"converged"``, ``"max_iter"``,
        ``"no_decrease"``...). ``final`` and ``fmin`` are then the polished point and value;
        ``feval`` counts the optimizer's evaluations only.
    polish_feval : int
        Objective evaluations of the polish.
    polish_steps : int
        Newton steps it took.
    polish_step : float or None
        Largest relative coordinate of its last Newton step (None if none was computed).
    polish_decrease : float
        How much it lowered the objective (>= 0).
    """

    optimizer: str
    initial: tuple[float, ...]
    final: tuple[float, ...]
    fmin: float
    feval: int
    status: str
    converged: bool
    seconds: float
    ftol_rel: float
    xtol_abs: float
    polish_status: str | None = None
    polish_feval: int = 0
    polish_steps: int = 0
    polish_step: float | None = None
    polish_decrease: float = 0.0

    def to_dict(self) -> dict:
        """JSON-serializable form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def minimize(fun: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray, *,
             optimizer: str = "bobyqa", initial_step: float = 0.75, ftol_rel: float = 0.0,
             ftol_abs: float = 0.0, xtol_abs: float = 1e-6, maxeval: int = 100_000
             ) -> OptSummary:
    """Minimize ``fun`` from ``x0`` without derivatives, keeping the best point seen.

    Parameters
    ----------
    fun : callable
        Objective; may return ``inf`` where it is undefined.
    x0, lower : numpy.ndarray
        Start and lower bounds (``-inf`` for none).
    optimizer : {"bobyqa", "newuoa"}
        BOBYQA honours the bounds; NEWUOA runs unconstrained and the caller rectifies signs.
    initial_step, ftol_rel, ftol_abs, xtol_abs, maxeval
        nlopt settings. The default stops on the step size (xtol_abs 1e-6 in theta) alone:
        a relative-change test (ftol_rel) fires early on rounding noise in flat directions
        (InstEval's dept variance moved by 2e-4 with ftol_rel 1e-15).

    Returns
    -------
    OptSummary
    """
    x0 = np.asarray(x0, dtype=float)
    n = len(x0)
    algorithm = {"bobyqa": nlopt.LN_BOBYQA, "newuoa": nlopt.LN_NEWUOA}.get(optimizer)
    if algorithm is None:
        raise ValueError(f"unknown optimizer '{optimizer}'; use 'bobyqa' or 'newuoa'")
    best = {"f": np.inf, "x": x0.copy(), "n": 0}

    def objective(x: np.ndarray, grad: np.ndarray) -> float:
        value = float(fun(x))
        best["n"] += 1
        if value < best["f"]:
            best["f"], best["x"] = value, x.copy()
        return value if np.isfinite(value) else 1e300

    if n == 1 and algorithm == nlopt.LN_NEWUOA:
        algorithm = nlopt.LN_BOBYQA  # NEWUOA needs at least two parameters
    opt = nlopt.opt(algorithm, n)
    opt.set_min_objective(objective)
    if algorithm == nlopt.LN_BOBYQA:
        opt.set_lower_bounds(lower)
    opt.set_ftol_rel(ftol_rel)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    opt.set_initial_step(np.full(n, initial_step))
    start = time.perf_counter()
    try:
        opt.optimize(x0)
        status = _STATUS.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        status = "ROUNDOFF_LIMITED"
    except (ValueError, RuntimeError) as exc:
        status = f"FAILURE: {exc}"
    seconds = time.perf_counter() - start
    converged = bool(status in _CONVERGED and np.isfinite(best["f"]))
    return OptSummary(optimizer=optimizer, initial=tuple(map(float, x0)),
                      final=tuple(map(float, best["x"])), fmin=float(best["f"]), feval=best["n"],
                      status=status, converged=converged,
                      seconds=seconds, ftol_rel=ftol_rel, xtol_abs=xtol_abs)


def polish_optimum(opt: OptSummary, fun: Callable[[np.ndarray], float],
                   lower: np.ndarray | None = None, upper: np.ndarray | None = None,
                   **settings) -> OptSummary:
    """The record ``opt`` with its optimum polished by :func:`mixedfx.polish.polish`.

    Parameters
    ----------
    opt : OptSummary
        The optimizer's record; ``final`` is the start of the polish, ``fmin`` its value.
    fun : callable
        The objective the optimizer minimized (same coordinates).
    lower, upper : numpy.ndarray, optional
        Bounds the polish must respect (none by default, as for NEWUOA).
    **settings
        ``step``, ``max_iter``, ``xtol``, ``max_halvings`` of :func:`~mixedfx.polish.polish`.

    Returns
    -------
    OptSummary
        ``final``, ``fmin`` (unchanged if no step lowered the objective), ``seconds`` and the
        ``polish_*`` fields updated.
    """
    from .polish import polish

    start = time.perf_counter()
    x, fx, info = polish(fun, np.asarray(opt.final, float), lower, upper, fx=opt.fmin,
                         **settings)
    return replace(opt, final=tuple(map(float, x)), fmin=float(fx),
                   seconds=opt.seconds + time.perf_counter() - start,
                   polish_status=info.status, polish_feval=info.feval,
                   polish_steps=info.steps,
                   polish_step=info.step_norm if np.isfinite(info.step_norm) else None,
                   polish_decrease=info.decrease)
