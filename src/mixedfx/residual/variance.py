"""Variance functions: the residual sd of row i is sigma * v_i (nlme's varFunc classes).

Row scaling by 1 / v_i whitens them; log det of the residual covariance gains 2 sum log v_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design.build import grouping_codes
from ..errors import DataError
from .base import BoundVariance, Structure
from .grouping import check_columns

MIN_FITTED = 1e-8  # |fitted| floor for varPower("fitted")


class IdentVariance(BoundVariance):
    """One sd ratio per stratum, the reference stratum's fixed at 1."""

    label = "Different standard deviations per stratum"

    def __init__(self, codes: np.ndarray, levels: tuple[str, ...], reference: int,
                 column: str) -> None:
        self.codes, self.levels, self.reference = codes, levels, reference
        self.formula = f"~1 | {column}"
        self.others = np.array([k for k in range(len(levels)) if k != reference])
        self.names = tuple(levels[k] for k in self.others)

    def start(self) -> np.ndarray:
        return np.zeros(len(self.others))

    def ratios(self, x: np.ndarray) -> np.ndarray:
        """sd ratio of every level (reference 1)."""
        out = np.ones(len(self.levels))
        out[self.others] = np.exp(x)
        return out

    def natural(self, x: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(x, float))

    @property
    def keys(self) -> tuple[str, ...]:
        return self.levels

    def report(self, x: np.ndarray) -> dict[str, float]:
        return {lev: float(r) for lev, r in zip(self.levels, self.ratios(x), strict=True)}

    def sd(self, x: np.ndarray, fitted: np.ndarray | None) -> np.ndarray:
        return self.ratios(x)[self.codes]


@dataclass(frozen=True)
class VarIdent(Structure):
    """A residual sd ratio per level of a column (nlme's ``varIdent(form = ~1 | column)``).

    Parameters
    ----------
    column : str
        Column whose levels have their own residual sd.
    reference : str, optional
        Level whose ratio is fixed at 1; by default the first level (a categorical's first
        category, else the smallest value). nlme takes the first level in the order of its
        (group-sorted) data; give ``reference=`` to match a particular nlme fit.

    Notes
    -----
    sd_i = sigma * delta_{s(i)}, delta_reference = 1, estimated as delta = exp(x). Every
    level needs at least two observations.
    """

    column: str
    reference: str | None = None

    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def bind(self, frame: pd.DataFrame, default_group=None) -> IdentVariance:
        check_columns(frame, (self.column,), "VarIdent")
        codes, levels = grouping_codes(frame, (self.column,))
        if len(levels) < 2:
            raise DataError(f"VarIdent: column '{self.column}' has a single level "
                            f"({levels[0]!r}) in the data: there is no ratio to estimate; "
                            "drop variance=")
        counts = np.bincount(codes, minlength=len(levels))
        if np.any(counts < 2):
            lev = levels[int(np.argmax(counts < 2))]
            raise DataError(f"VarIdent: level {lev!r} of column '{self.column}' has one "
                            "observation; its residual variance cannot be estimated: merge "
                            "it with another level or drop the row")
        ref = 0
        if self.reference is not None:
            if str(self.reference) not in levels:
                raise DataError(f"VarIdent: reference level {self.reference!r} is not a level "
                                f"of '{self.column}'; levels are: {', '.join(levels)}")
            ref = levels.index(str(self.reference))
        return IdentVariance(codes, levels, ref, self.column)


class PowerVariance(BoundVariance):
    """sd multiplier |c_i|^power of a covariate or of the fitted values."""

    label = "Power of variance covariate"
    names = ("power",)

    def __init__(self, covariate: np.ndarray | None, name: str) -> None:
        self.covariate = covariate
        self.needs_fitted = covariate is None
        self.formula = f"~{name}"

    def start(self) -> np.ndarray:
        return np.zeros(1)

    def natural(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float)[:1].copy()

    def sd(self, x: np.ndarray, fitted: np.ndarray | None) -> np.ndarray:
        c = self.covariate if self.covariate is not None else fitted
        return np.power(np.maximum(np.abs(c), MIN_FITTED), float(x[0]))


@dataclass(frozen=True)
class VarPower(Structure):
    """Residual sd proportional to a power of a covariate (nlme's ``varPower``).

    Parameters
    ----------
    covariate : str, default "fitted"
        A numeric column, or ``"fitted"`` for the conditional fitted values (nlme's default
        ``~fitted(.)``). With fitted values the fit alternates, as nlme does: optimize with
        the fitted values held fixed, recompute them, repeat until the estimates settle.

    Notes
    -----
    sd_i = sigma * |c_i|^power, the power unconstrained.
    """

    covariate: str = "fitted"

    def columns(self) -> tuple[str, ...]:
        return () if self.covariate == "fitted" else (self.covariate,)

    def bind(self, frame: pd.DataFrame, default_group=None) -> PowerVariance:
        if self.covariate == "fitted":
            return PowerVariance(None, "fitted(.)")
        check_columns(frame, (self.covariate,), "VarPower")
        col = frame[self.covariate]
        if col.dtype.kind not in "iuf":
            raise DataError(f"VarPower: covariate '{self.covariate}' must be numeric, got "
                            f"dtype {col.dtype}")
        values = col.to_numpy(dtype=float)
        if np.any(values == 0):
            raise DataError(f"VarPower: covariate '{self.covariate}' has zero values, where "
                            "|c|^power is 0 or infinite: shift the covariate")
        return PowerVariance(values, self.covariate)
