"""Out-of-core benchmark (issue 7): ``y ~ 1 + x + (1 + x | user) + (1 | item)`` on Parquet.

Two ways to run it:

* ``python -m benchmarks.run --only out-of-core`` (cases below): a 1,000,000-row data set
  (200,000 quick) written to a temporary directory, fitted in memory and from Parquet.
* ``python -m benchmarks.outofcore DIR [--threads 2] [--memory-limit 2GB] [--in-memory]``
  on data made by :mod:`benchmarks.make_outofcore_data` (kept outside the repository):
  prints aggregation and optimization wall time, time per objective evaluation and the
  process's peak resident memory as JSON. ``--in-memory`` reads the files into pandas and
  fits in memory instead (for scale).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import tempfile
import time

import pandas as pd

from .common import Case
from .make_outofcore_data import write

FORMULA = "y ~ 1 + x + (1 + x | user) + (1 | item)"


def fit_outofcore(path: str, threads: int | None = None, memory_limit: str | None = None
                  ) -> dict:
    """Fit from Parquet through DuckDB; timings and peak RSS."""
    from mixedfx.outofcore import lmm_outofcore

    timings: dict = {}
    res = lmm_outofcore(FORMULA, path, threads=threads, memory_limit=memory_limit,
                        timings=timings)
    return {"rows": res.nobs, "aggregate_s": timings["aggregate_s"],
            "optimize_s": timings["optimize_s"], "feval": timings["feval"],
            "per_eval_s": timings["optimize_s"] / timings["feval"],
            "objective": res.objective, "theta": res.theta.tolist(),
            "fixef": res.fixef.tolist(), "sigma": res.sigma, "peak_rss_gib": _peak_rss()}


def fit_in_memory(path: str) -> dict:
    """Read the files into pandas and fit in memory; read and fit times and peak RSS."""
    import mixedfx

    t0 = time.perf_counter()
    files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    data = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    t1 = time.perf_counter()
    res = mixedfx.lmm(FORMULA, data)  # moment start, as the out-of-core fit
    t2 = time.perf_counter()
    return {"rows": res.nobs, "read_s": t1 - t0, "fit_s": t2 - t1, "feval": res.optsum.feval,
            "objective": res.objective, "theta": res.theta.tolist(),
            "fixef": res.fixef.tolist(), "sigma": res.sigma, "peak_rss_gib": _peak_rss()}


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _parquet_case(nrows: int) -> Case:
    tmp = tempfile.mkdtemp(prefix="mixedfx-ooc-")

    def setup() -> pd.DataFrame:
        write(nrows, tmp, chunk=max(nrows // 4, 10))
        data = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(f"{tmp}/*.parquet"))],
                         ignore_index=True)
        data.attrs["parquet"] = tmp
        return data

    def in_memory(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.lmm(FORMULA, data, control={"start": "identity"}).objective

    def duckdb_parquet(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.lmm(FORMULA, data.attrs["parquet"]).objective

    return Case(f"out-of-core {nrows:,} rows (1+x|user)+(1|item) REML", setup,
                {"mixedfx": in_memory, "mixedfx-duckdb": duckdb_parquet},
                r_code=f"m <- lmer({FORMULA}, d); value <- REMLcrit(m)",
                r_factors=("user", "item"))


def cases(quick: bool) -> list[Case]:
    """One simulated case fitted in memory and from Parquet (1M rows; 200k quick)."""
    return [_parquet_case(200_000 if quick else 1_000_000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default=None,
                    help="DuckDB's memory limit (default: mixedfx's, 512MB)")
    ap.add_argument("--in-memory", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = fit_in_memory(args.path) if args.in_memory else \
        fit_outofcore(args.path, args.threads, args.memory_limit)
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
