"""One random-effects term: level codes of its grouping factor and its raw model columns."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True, eq=False)
class ReTerm:
    """Design of one random-effects term ``(expr | group)``.

    Attributes
    ----------
    group : str
        Grouping factor name as lme4 prints it (``Subject``, ``cask:batch``).
    columns : tuple of str
        Names of the term's columns (``(Intercept)``, ``Days``), R spelling.
    levels : tuple of str
        Levels of the grouping factor that occur in the data, in factor order.
    codes : numpy.ndarray
        0-based level index of each observation (int64, length n).
    Z : numpy.ndarray
        Raw model columns of the term, shape (n, p); row i belongs to level ``codes[i]``.
    """

    group: str
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    codes: np.ndarray
    Z: np.ndarray

    @property
    def nlevels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def dim(self) -> int:
        """Number of random effects per level (columns of the term)."""
        return self.Z.shape[1]

    @property
    def ntheta(self) -> int:
        """Number of covariance parameters: the lower triangle of a dim x dim factor."""
        return self.dim * (self.dim + 1) // 2

    def theta_lower_bounds(self) -> np.ndarray:
        """Lower bounds of this term's theta: 0 for diagonal entries, -inf otherwise.

        Theta holds the lower triangle of the relative covariance factor column by column,
        as lme4 does.
        """
        rows, cols = lower_indices(self.dim)
        return np.where(rows == cols, 0.0, -np.inf)

    def theta_initial(self) -> np.ndarray:
        """lme4's starting value: the identity factor."""
        rows, cols = lower_indices(self.dim)
        return (rows == cols).astype(float)


@lru_cache(maxsize=64)
def lower_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a p x p lower triangle, column-major (lme4's theta order).

    Cached (every objective evaluation used to rebuild them); the arrays are read-only.
    """
    cols, rows = np.triu_indices(p)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols  # (row, col) with row >= col, ordered by column then row


def theta_to_factor(theta: np.ndarray, p: int) -> np.ndarray:
    """Lower-triangular relative covariance factor T from its theta segment."""
    T = np.zeros((p, p))
    rows, cols = lower_indices(p)
    T[rows, cols] = theta
    return T
