"""Parametric bootstrap of a fitted LMM (lme4's ``bootMer`` with the default statistics).

Each replicate simulates a response from the fit (:mod:`mixedfx.inference.simulate`), refits
the same model to it (same criterion, ``LmmModel.with_response``) and records the variance
parameters on lme4's profile scale (sd, cor, sigma) and the fixed effects. Replicate j uses
the j-th child of ``SeedSequence(seed)`` whichever process runs it, so ``n_jobs`` changes the
wall time only, never the numbers.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MixedFXError
from .parameters import SdCorScale
from .simulate import seeds, simulator

CHUNKS_PER_JOB = 8  # tasks per worker process: enough for a smooth progress bar


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Replicates of a parametric bootstrap and their percentile intervals.

    Attributes
    ----------
    replicates : pandas.DataFrame
        One row per replicate, one column per parameter (``sd_...``, ``cor_...``, ``sigma``,
        fixed effects, then any residual-structure parameters in nlme's scale, such as
        ``Phi``); NaN rows for refits that failed.
    estimates : pandas.Series
        The original fit's parameters on the same scale.
    converged : numpy.ndarray
        Whether each replicate's optimizer reported convergence.
    singular : numpy.ndarray
        Whether each replicate's fit is singular.
    seed : int or None
        The root seed given.
    reml : bool
        Criterion of the refits (that of the original fit).
    seconds : float
        Wall time.
    """

    replicates: pd.DataFrame
    estimates: pd.Series
    converged: np.ndarray
    singular: np.ndarray
    seed: int | None
    reml: bool
    seconds: float

    @property
    def n(self) -> int:
        """Number of replicates."""
        return len(self.replicates)

    def confint(self, level: float = 0.95, kind: str = "perc") -> pd.DataFrame:
        """Percentile intervals of the replicates (failed refits left out).

        Parameters
        ----------
        level : float, default 0.95
        kind : {"perc", "quantile"}
            ``"perc"`` (default): boot's percentile endpoints, as lme4's
            ``confint(method="boot")``: order statistics (R+1) alpha, interpolated on the
            normal quantile scale between neighbours. ``"quantile"``: numpy's linear
            quantiles.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper`` indexed by parameter.
        """
        if not 0 < level < 1:
            raise MixedFXError(f"level must be between 0 and 1, got {level}")
        a = (1 - level) / 2
        values = self.replicates.to_numpy()
        if kind == "perc":
            q = np.array([percentile_endpoints(values[:, k], (a, 1 - a))
                          for k in range(values.shape[1])]).T
        elif kind == "quantile":
            q = np.nanquantile(values, [a, 1 - a], axis=0)
        else:
            raise MixedFXError(f"unknown kind '{kind}'; use 'perc' or 'quantile'")
        return pd.DataFrame({"lower": q[0], "upper": q[1]}, index=self.replicates.columns)

    def summary(self) -> pd.DataFrame:
        """Estimate, bootstrap mean, bias and standard error per parameter."""
        mean = self.replicates.mean()
        return pd.DataFrame({"estimate": self.estimates, "mean": mean,
                             "bias": mean - self.estimates, "std_error": self.replicates.std()})

    def __repr__(self) -> str:
        return (f"<BootstrapResult n={self.n} converged={int(self.converged.sum())} "
                f"singular={int(self.singular.sum())} seed={self.seed}>")

    def to_dict(self) -> dict:
        """JSON-serializable form (NaN as None)."""
        def clean(values):
            return [None if not math.isfinite(v) else float(v) for v in values]

        return {"parameters": list(self.replicates.columns),
                "replicates": [clean(r) for r in self.replicates.to_numpy()],
                "estimates": clean(self.estimates.to_numpy()),
                "converged": self.converged.tolist(), "singular": self.singular.tolist(),
                "seed": self.seed, "reml": self.reml, "seconds": self.seconds}


def percentile_endpoints(t: np.ndarray, alphas) -> np.ndarray:
    """boot's percentile endpoints (``norm.inter``): with R finite replicates, the
    (R+1) alpha-th order statistic, interpolated on the normal quantile scale between the
    neighbouring order statistics when (R+1) alpha is not an integer; the extreme order
    statistic when it falls outside 1..R."""
    t = np.sort(t[np.isfinite(t)])
    R = len(t)
    if R == 0:
        return np.full(len(alphas), np.nan)
    out = []
    for alpha in alphas:
        rk = (R + 1) * alpha
        k = int(np.floor(rk))
        if k <= 0:
            out.append(t[0])
        elif k >= R:
            out.append(t[-1])
        elif k == rk:
            out.append(t[k - 1])
        else:
            z, zk, zk1 = stats.norm.ppf([alpha, k / (R + 1), (k + 1) / (R + 1)])
            out.append(t[k - 1] + (z - zk) / (zk1 - zk) * (t[k] - t[k - 1]))
    return np.array(out)


class _Job:
    """What a replicate needs: the model, the simulator and the parameter scale."""

    def __init__(self, model, sim, scale: SdCorScale, extra: tuple[str, ...]) -> None:
        self.model, self.sim, self.scale, self.extra = model, sim, scale, extra
        self.size = scale.size + model.X.shape[1] + len(extra)

    def run(self, seed: np.random.SeedSequence) -> tuple[np.ndarray, bool, bool]:
        y = self.sim.draw(np.random.default_rng(seed))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = self.model.with_response(y).fit()
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return np.full(self.size, np.nan), False, False
        par = np.concatenate([self.scale.from_theta(np.asarray(fit.theta), fit.sigma),
                              fit.fixef.to_numpy(),
                              [fit.residual_params.get(k, np.nan) for k in self.extra]])
        return par, bool(fit.converged), bool(fit.singular)


_WORKER_JOB: _Job | None = None
_WORKER_LIMITS: list = []


def _init_worker(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job
    try:  # one thread per process: the processes are the parallelism
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    try:
        from threadpoolctl import threadpool_limits

        _WORKER_LIMITS.append(threadpool_limits(1))  # kept alive for the worker's life
    except ImportError:
        pass


def _context():
    """Worker start method: not fork (the engine's numba threads are not fork-safe); a fork
    server that has imported mixedfx once when available, spawn otherwise."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mixedfx"])
        return ctx
    return multiprocessing.get_context("spawn")


def _run_chunk(tasks: list[tuple[int, np.random.SeedSequence]]) -> list:
    return [(i, *_WORKER_JOB.run(s)) for i, s in tasks]


class _Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, show: bool, label: str = "bootstrap") -> None:
        self.total, self.show, self.done, self.label = total, show, 0, label
        self.start = time.perf_counter()

    def update(self, k: int) -> None:
        self.done += k
        if not self.show:
            return
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r{self.label} {self.done:>{len(str(self.total))}}/{self.total} "
                         f"[{'=' * filled}{' ' * (width - filled)}] {elapsed:.1f} s")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_replicates(job, n: int, *, seed: int | None, n_jobs: int = 1,
                   progress: bool | None = None, label: str = "bootstrap") -> list[tuple]:
    """``job.run(seed_j)`` for the n child seeds of ``SeedSequence(seed)``, in order.

    Parameters
    ----------
    job : object
        Picklable, with ``run(seed) -> tuple`` (one replicate).
    n : int
        Number of replicates.
    seed : int, optional
        Root seed.
    n_jobs : int
        Worker processes (-1: one per core); the results do not depend on it.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).
    label : str
        Text in front of the progress bar.

    Returns
    -------
    list of tuple
        ``job.run`` of replicate j at position j.
    """
    if int(n) != n or n < 1:
        raise MixedFXError(f"n must be a positive integer, got {n}")
    n = int(n)
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise MixedFXError(f"n_jobs must be a positive integer or -1, got {n_jobs}")
    children = seeds(seed, n)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = _Progress(n, show, label)
    out: list = [None] * n

    def store(rows) -> None:
        for i, *result in rows:
            out[i] = tuple(result)
        bar.update(len(rows))

    if n_jobs == 1:
        for i, s in enumerate(children):
            store([(i, *job.run(s))])
    else:
        size = max(1, math.ceil(n / (n_jobs * CHUNKS_PER_JOB)))
        tasks = list(enumerate(children))
        chunks = [tasks[k : k + size] for k in range(0, n, size)]
        try:
            with ProcessPoolExecutor(max_workers=int(n_jobs), mp_context=_context(),
                                     initializer=_init_worker, initargs=(job,)) as pool:
                for fut in as_completed([pool.submit(_run_chunk, c) for c in chunks]):
                    store(fut.result())
        except BrokenProcessPool:
            # Workers re-import the main script: without an ``if __name__ == "__main__":``
            # guard (or from stdin) they cannot start. The numbers do not depend on the
            # processes, so finish here.
            warnings.warn("worker processes could not start (in a script, call this under "
                          "'if __name__ == \"__main__\":'); running the remaining replicates "
                          "in this process", RuntimeWarning, stacklevel=3)
            for i, s in enumerate(children):
                if out[i] is None:
                    store([(i, *job.run(s))])
    return out


def bootstrap(res, n: int = 500, *, seed: int | None = None, n_jobs: int = 1,
              progress: bool | None = None) -> BootstrapResult:
    """Parametric bootstrap: simulate from the fit, refit, collect the parameters.

    Parameters
    ----------
    res : LmmResult
        A fit, with or without a residual correlation or variance structure.
    n : int, default 500
        Number of replicates.
    seed : int, optional
        Root seed: the same seed gives the same replicates, whatever ``n_jobs``.
    n_jobs : int, default 1
        Worker processes (-1: one per core). Replicates are split into chunks that the
        processes take in turn.
    progress : bool, optional
        Show a progress bar on stderr; by default when stderr is a terminal.

    Returns
    -------
    BootstrapResult
    """
    sim = simulator(res)
    model = res.model
    scale = SdCorScale(model.terms)
    extra = tuple(res.residual_params)  # residual-structure parameters (nlme's scale)
    job = _Job(model, sim, scale, extra)
    start = time.perf_counter()
    rows = run_replicates(job, n, seed=seed, n_jobs=n_jobs, progress=progress)
    table = np.array([r[0] for r in rows]).reshape(len(rows), job.size)
    converged = np.array([r[1] for r in rows], dtype=bool)
    singular = np.array([r[2] for r in rows], dtype=bool)
    n = len(rows)
    names = scale.names + list(res.fixef.index) + list(extra)
    index = pd.Index(names, dtype=object)
    estimates = np.concatenate([scale.from_theta(np.asarray(res.theta, float), res.sigma),
                                res.fixef.to_numpy(), [res.residual_params[k] for k in extra]])
    failed = int(np.isnan(table).any(axis=1).sum())
    if failed:
        warnings.warn(f"{failed} of {n} bootstrap refits failed; they are NaN in the "
                      "replicates and left out of the intervals", RuntimeWarning, stacklevel=2)
    return BootstrapResult(replicates=pd.DataFrame(table, columns=index),
                           estimates=pd.Series(estimates, index=index, name="estimate"),
                           converged=converged, singular=singular, seed=seed, reml=res.reml,
                           seconds=time.perf_counter() - start)
