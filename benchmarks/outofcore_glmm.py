"""Out-of-core GLMM benchmark (issue 7): a Bernoulli crossed model from Parquet vs in memory.

``python -m benchmarks.run --only "out-of-core GLMM"``: ``y ~ x + (1 | user) + (1 | item)``
with a logit link on 1,000,000 rows (200,000 quick; 20 rows per user, 500 items), written
as four Parquet files to a temporary directory, fitted by Laplace in memory, from Parquet
through DuckDB (each PIRLS step one pass over record batches) and by lme4's ``glmer``.
``python -m benchmarks.outofcore_glmm NROWS`` prints the Parquet fit's setup and fit time,
passes over the data and peak resident memory as JSON.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from .common import Case

FORMULA = "y ~ x + (1 | user) + (1 | item)"


def simulate(nrows: int, seed: int = 7) -> pd.DataFrame:
    """Bernoulli rows: 20 per user, 500 items, sd 1 (user) and 0.5 (item)."""
    rng = np.random.default_rng(seed)
    users, items = max(nrows // 20, 2), 500
    user = rng.integers(0, users, nrows)
    item = rng.integers(0, items, nrows)
    x = rng.normal(size=nrows)
    eta = -0.5 + 0.7 * x + rng.normal(size=users)[user] + 0.5 * rng.normal(size=items)[item]
    y = (rng.random(nrows) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    return pd.DataFrame({"user": user, "item": item, "x": x, "y": y})


def write(nrows: int, folder: str, parts: int = 4) -> str:
    data = simulate(nrows)
    for k, idx in enumerate(np.array_split(np.arange(nrows), parts)):
        data.iloc[idx].to_parquet(os.path.join(folder, f"part-{k}.parquet"), index=False)
    return os.path.join(folder, "*.parquet")


def fit_parquet(path: str) -> dict:
    """Fit from Parquet through DuckDB; timings, passes and peak RSS."""
    from mixedfx.outofcore.glmm_dispatch import glmm_outofcore

    timings: dict = {}
    res = glmm_outofcore(FORMULA, path, "binomial", threads=2, timings=timings)
    return {"rows": res.nobs, **timings, "feval": res.optsum.feval,
            "deviance": res.deviance, "theta": res.theta.tolist(),
            "fixef": res.fixef.tolist(),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _case(nrows: int) -> Case:
    tmp = tempfile.mkdtemp(prefix="mixedfx-oocglmm-")

    def setup() -> pd.DataFrame:
        path = write(nrows, tmp)
        data = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(path))],
                         ignore_index=True)
        data.attrs["parquet"] = path
        return data

    def in_memory(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.glmm(FORMULA, data, family="binomial").loglik

    def duckdb_parquet(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.glmm(FORMULA, data.attrs["parquet"], family="binomial").loglik

    return Case(f"out-of-core GLMM {nrows:,} rows Bernoulli (1|user)+(1|item)", setup,
                {"mixedfx": in_memory, "mixedfx-duckdb": duckdb_parquet},
                r_code=f"m <- glmer({FORMULA}, d, family = binomial); "
                       "value <- as.numeric(logLik(m))",
                r_factors=("user", "item"), r_packages=("lme4",))


def cases(quick: bool) -> list[Case]:
    """One Bernoulli crossed model in memory and from Parquet (1M rows; 200k quick)."""
    return [_case(200_000 if quick else 1_000_000)]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    folder = tempfile.mkdtemp(prefix="mixedfx-oocglmm-")
    t0 = time.perf_counter()
    out = fit_parquet(write(n, folder))
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out))
