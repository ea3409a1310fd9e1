"""Groups and within-group order of the rows for correlation structures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.build import grouping_codes
from ..errors import DataError


def group_factors(group: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """Normalize ``group=`` (``"Mare"``, ``"a:b"`` or a list of columns) to a tuple."""
    if group is None:
        return None
    if isinstance(group, str):
        return tuple(g.strip() for g in group.split(":"))
    return tuple(group)


def check_columns(frame: pd.DataFrame, names: tuple[str, ...], what: str) -> None:
    """Raise a DataError naming any column of ``names`` missing from ``frame``."""
    for name in names:
        if name not in frame.columns:
            cols = ", ".join(map(str, list(frame.columns)[:20]))
            raise DataError(f"{what}: column '{name}' is not in the data; columns are: {cols}")


def resolve_group(factors: tuple[str, ...] | None, default: tuple[str, ...] | None,
                  what: str) -> tuple[str, ...]:
    """The grouping factor of a structure: the one given or the model's single one."""
    if factors is not None:
        return factors
    if default is None:
        raise DataError(f"{what}: give group= (the column whose levels hold correlated "
                        "observations); the model has no single random-effects grouping "
                        "factor to default to")
    return default


def group_codes(frame: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """Level code (0-based) of each row's group."""
    codes, _ = grouping_codes(frame, factors)
    return codes


def predecessors(groups: np.ndarray, time: np.ndarray | None, what: str, group_name: str,
                 time_name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Previous row (in time, or row order) of each row within its group, and the time gap.

    Returns
    -------
    prev : numpy.ndarray
        Index of the previous observation of the same group, -1 for the first one.
    gap : numpy.ndarray
        Time since that observation (1.0 in row order); 0 where ``prev`` is -1.
    """
    n = len(groups)
    key = np.arange(n, dtype=float) if time is None else np.asarray(time, dtype=float)
    order = np.lexsort((np.arange(n), key, groups))
    g, t = groups[order], key[order]
    same = g[1:] == g[:-1]
    if time is not None:
        dup = np.flatnonzero(same & (t[1:] == t[:-1]))
        if dup.size:
            i = order[dup[0] + 1]
            raise DataError(f"{what}: time column '{time_name}' has duplicate values within a "
                            f"group of '{group_name}' (value {t[dup[0] + 1]:g} at row {i}); "
                            "each time may occur once per group: aggregate the duplicates or "
                            "use a finer group")
    prev = np.full(n, -1, dtype=np.int64)
    gap = np.zeros(n)
    prev[order[1:][same]] = order[:-1][same]
    gap[order[1:][same]] = (t[1:] - t[:-1])[same] if time is not None else 1.0
    return prev, gap


def time_values(frame: pd.DataFrame, time: str, what: str) -> np.ndarray:
    """Numeric values of the time column (finite); dates and durations in days."""
    col = frame[time]
    if col.dtype.kind in "mM":
        span = col - col.min() if col.dtype.kind == "M" else col
        values = (span / pd.Timedelta(days=1)).to_numpy(dtype=float)
    elif col.dtype.kind in "iuf":
        values = col.to_numpy(dtype=float)
    else:
        raise DataError(f"{what}: time column '{time}' must be numeric or dates, got dtype "
                        f"{col.dtype}")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{what}: time column '{time}' has non-finite values")
    return values
