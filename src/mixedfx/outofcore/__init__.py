"""Out-of-core and distributed LMM fitting: cross-product blocks by aggregation.

The LMM likelihood depends on the data only through the blocks [Z X y]'[Z X y] (see
:mod:`mixedfx.linalg.blocks`). Here they are computed by DuckDB SQL (Parquet files, globs,
DuckDB relations) or by Dask (Dask DataFrames), never loading the rows into Python.
"""

from .dispatch import is_outofcore, lmm_outofcore

__all__ = ["is_outofcore", "lmm_outofcore"]
