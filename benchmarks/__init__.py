"""Benchmarks: ``python -m benchmarks.run`` (or ``make bench``) prints one table.

Each topic module (``lmm``, ``glmm``, ``residual``, ...) defines ``cases(quick) -> list[Case]``;
:mod:`benchmarks.run` discovers them. Timings are wall-clock seconds after import, data built
outside the timed region, BLAS pinned to the threads given on the command line.
"""
