"""What every benchmark case shares: the case record, timing, and running R peers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Case:
    """One row of the benchmark table.

    Parameters
    ----------
    name : str
        Row label, e.g. ``"sleepstudy (Days|Subject) REML"``.
    setup : callable
        Builds the data once (not timed) and returns a ``pandas.DataFrame``.
    runners : dict
        Peer name (``"mixedfx"``, ``"mixedlm"``, ``"statsmodels"``, ...) to a function
        ``f(data) -> float | None`` that fits the model (timed) and returns a check value
        (the objective, log-likelihood or a key estimate) shown beside the time. A runner
        whose package is missing raises ``ImportError`` and its cell reads ``n/a``.
    r_code : str, optional
        R code fitting the same model on a data frame ``d`` already read from CSV (factors
        converted as listed in ``r_factors``); it must leave the check value in ``value``.
        Run with ``Rscript`` when installed; the table column is ``"R"``.
    r_factors : tuple of str
        Columns to convert with ``factor()`` in R.
    r_packages : tuple of str
        R packages to load (``lme4``, ``nlme``, ...).
    repeats : int
        Timed repetitions for fast cases; the best is reported.
    slow_peers : tuple of str
        Peers skipped unless ``--all-peers`` is given (they take many minutes here).
    r_peers : dict
        More R implementations, each its own column: name (``"glmmTMB"``) to ``(r_code,
        r_packages)``, run as ``r_code`` is.
    """

    name: str
    setup: Callable[[], pd.DataFrame]
    runners: dict[str, Callable[[pd.DataFrame], float | None]]
    r_code: str | None = None
    r_factors: tuple[str, ...] = ()
    r_packages: tuple[str, ...] = ("lme4",)
    repeats: int = 1
    slow_peers: tuple[str, ...] = field(default_factory=tuple)
    r_peers: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Timing:
    """Best wall time in seconds and the runner's check value (or why it did not run)."""

    seconds: float | None
    value: float | None = None
    note: str = ""


def time_runner(fn: Callable[[pd.DataFrame], float | None], data: pd.DataFrame,
                repeats: int) -> Timing:
    """Best of ``repeats`` wall times of ``fn(data)``; ``n/a`` when a package is missing."""
    best, value = float("inf"), None
    try:
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            value = fn(data)
            best = min(best, time.perf_counter() - t0)
    except ImportError as exc:
        return Timing(None, None, f"n/a ({exc.name or exc})")
    except Exception as exc:  # a peer failing is a result, not a crash of the table
        return Timing(None, None, f"failed: {type(exc).__name__}: {str(exc)[:60]}")
    return Timing(best, None if value is None else float(value))


def rscript() -> str | None:
    """Path of ``Rscript`` or None."""
    return shutil.which("Rscript")


def time_r(case: Case, data: pd.DataFrame, threads: int) -> Timing:
    """Run ``case.r_code`` under Rscript on ``data`` written to a temporary CSV; the R side
    times only the fit."""
    exe = rscript()
    if exe is None or case.r_code is None:
        return Timing(None, None, "n/a (no Rscript)" if case.r_code else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        data.to_csv(path, index=False)
        libs = "".join(f"suppressMessages(library({p}))\n" for p in case.r_packages)
        facs = "".join(f"d${c} <- factor(d${c})\n" for c in case.r_factors)
        code = (f"{libs}d <- read.csv({path!r})\n{facs}"
                f"t <- system.time({{ {case.r_code} }})[['elapsed']]\n"
                "cat('RESULT', t, value, '\\n')\n")
        script = os.path.join(tmp, "bench.R")
        with open(script, "w") as fh:
            fh.write(code)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        proc = subprocess.run([exe, script], capture_output=True, text=True, env=env,
                              check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            _, t, v = line.split()[:3]
            return Timing(float(t), float(v))
    return Timing(None, None, f"failed: {proc.stderr.strip().splitlines()[-1:]}")
