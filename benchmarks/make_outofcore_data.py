"""Simulate the out-of-core benchmark's data: ``y ~ 1 + x + (1 + x | user) + (1 | item)``.

About 10 rows per user (exactly 10 here), 2,000 items, written in chunks with pyarrow so
the whole data set is never in memory. Keep the output OUTSIDE the repository::

    python -m benchmarks.make_outofcore_data 10_000_000 /work/bigdata/ooc_10M
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_USER = 10
ITEMS = 2_000
BETA = (1.0, 0.5)
SD_USER = (1.0, 0.3)
CORR_USER = 0.3
SD_ITEM = 0.5
SIGMA = 1.0


def write(nrows: int, out: str, chunk: int = 5_000_000, seed: int = 7) -> None:
    """Write ``nrows`` rows as Parquet files ``part-00000.parquet``... under ``out``."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    item_eff = rng.normal(0, SD_ITEM, ITEMS)
    cov = np.array([[SD_USER[0] ** 2, CORR_USER * SD_USER[0] * SD_USER[1]],
                     [CORR_USER * SD_USER[0] * SD_USER[1], SD_USER[1] ** 2]])
    chol = np.linalg.cholesky(cov)
    chunk -= chunk % ROWS_PER_USER
    for part, start in enumerate(range(0, nrows, chunk)):
        m = min(chunk, nrows - start)
        users = m // ROWS_PER_USER
        u = rng.normal(size=(users, 2)) @ chol.T
        user = np.repeat(np.arange(start // ROWS_PER_USER, start // ROWS_PER_USER + users),
                         ROWS_PER_USER)
        local = user - start // ROWS_PER_USER
        item = rng.integers(0, ITEMS, m)
        x = rng.normal(size=m)
        y = (BETA[0] + BETA[1] * x + u[local, 0] + u[local, 1] * x + item_eff[item]
             + rng.normal(0, SIGMA, m))
        table = pa.table({"user": user, "item": item.astype(np.int64), "x": x, "y": y})
        pq.write_table(table, os.path.join(out, f"part-{part:05d}.parquet"),
                       row_group_size=1_000_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("nrows", type=lambda s: int(s.replace("_", "")))
    ap.add_argument("out")
    args = ap.parse_args()
    write(args.nrows, args.out)


if __name__ == "__main__":
    main()
