"""Compound symmetry: every pair of observations in a group has correlation rho.

For a group of size n, C = (1 - rho) I + rho J has eigenvalues l0 = 1 - rho (n - 1 times)
and l1 = 1 + (n - 1) rho (on the constant vector), so the symmetric whitener is closed form,

    W = l0^(-1/2) I + (l1^(-1/2) - l0^(-1/2)) J / n,     log det C = (n - 1) log l0 + log l1,

valid for -1 / (n_max - 1) < rho < 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .base import BoundCorrelation, Structure
from .grouping import check_columns, group_codes, group_factors, resolve_group


class CompSymmCorrelation(BoundCorrelation):
    """Closed-form whitening of compound symmetry, one dense block per group."""

    names = ("Rho",)
    label = "Compound symmetry"

    def __init__(self, groups: np.ndarray, formula: str) -> None:
        self.groups, self.formula = groups, formula
        n = len(groups)
        order = np.argsort(groups, kind="stable")
        sizes = np.bincount(groups)
        self.sizes = sizes[sizes > 0]
        self.lower = -1.0 / (sizes.max() - 1) if sizes.max() > 1 else -1.0
        size_of_row = sizes[groups]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        self._indptr = np.concatenate([[0], np.cumsum(size_of_row)])
        # row i's entries are all rows of its group (in sorted order)
        row = np.repeat(np.arange(n), size_of_row)
        within = np.arange(self._indptr[-1]) - self._indptr[row]
        idx = order[starts[groups][row] + within]
        self._indices = idx.astype(np.int64)
        self._is_diag = (self._indices == row).astype(float)
        self._inv_size = 1.0 / size_of_row[row]
        self._row_size = size_of_row[row]

    def _rho(self, x: float) -> float:
        return self.lower + (1.0 - self.lower) / (1.0 + np.exp(-x))

    def start(self) -> np.ndarray:
        return np.array([float(np.log(-self.lower / 1.0))])  # rho = 0

    def natural(self, x: np.ndarray) -> np.ndarray:
        return np.array([self._rho(float(x[0]))])

    def whitener(self, x: np.ndarray) -> tuple[sp.csr_matrix, float]:
        rho = self._rho(float(x[0]))
        l0 = 1.0 - rho
        l1_group = 1.0 + (self.sizes - 1) * rho
        if l0 <= 0 or np.any(l1_group <= 0):
            return None, np.inf
        l1_entry = 1.0 + (self._row_size - 1) * rho
        a = l0 ** -0.5
        data = (l1_entry ** -0.5 - a) * self._inv_size + a * self._is_diag
        n = len(self.groups)
        W = sp.csr_matrix((data, self._indices, self._indptr), shape=(n, n))
        logdet = float(np.sum((self.sizes - 1) * np.log(l0) + np.log(l1_group)))
        return W, logdet


    def gram_basis(self) -> list[sp.csr_matrix]:
        """Within-group deviations (I - J/n, one row per observation) and, per distinct group
        size, group sums (one row per group): C^-1 = (I - J/n) / l0 + J / (n l1)."""
        n = len(self.groups)
        centre = self._centre()
        basis = [centre]
        sizes = np.bincount(self.groups)
        for size in self._size_classes:
            members = np.flatnonzero(sizes[self.groups] == size)
            g = np.unique(self.groups[members], return_inverse=True)[1]
            basis.append(sp.csr_matrix((np.ones(len(members)), (g, members)),
                                       shape=(int(g.max()) + 1, n)))
        return basis

    def _centre(self) -> sp.csr_matrix:
        n = len(self.groups)
        data = self._is_diag - self._inv_size
        return sp.csr_matrix((data, self._indices, self._indptr), shape=(n, n))

    @property
    def _size_classes(self) -> np.ndarray:
        return np.unique(self.sizes)

    def gram_coefficients(self, x: np.ndarray) -> tuple[np.ndarray | None, float]:
        rho = self._rho(float(x[0]))
        l0 = 1.0 - rho
        sizes = self._size_classes
        l1 = 1.0 + (sizes - 1) * rho
        if l0 <= 0 or np.any(l1 <= 0):
            return None, np.inf
        l1_group = 1.0 + (self.sizes - 1) * rho
        logdet = float(np.sum((self.sizes - 1) * np.log(l0) + np.log(l1_group)))
        return np.concatenate([[1.0 / l0], 1.0 / (sizes * l1)]), logdet


@dataclass(frozen=True)
class CompSymm(Structure):
    """Compound-symmetric residuals within groups (nlme's ``corCompSymm``).

    Parameters
    ----------
    group : str or list of str, optional
        Grouping column(s); by default the model's single random-effects grouping factor.

    Notes
    -----
    corr(e_i, e_j) = rho for i != j in one group. With a random intercept on the same
    factor, rho and the intercept variance are only separately identified when rho < 0 is
    allowed; nlme reports the same.
    """

    group: str | tuple[str, ...] | None = None

    def columns(self) -> tuple[str, ...]:
        return group_factors(self.group) or ()

    def bind(self, frame: pd.DataFrame, default_group) -> CompSymmCorrelation:
        factors = resolve_group(group_factors(self.group), default_group, "CompSymm")
        check_columns(frame, factors, "CompSymm")
        return CompSymmCorrelation(group_codes(frame, factors), f"~1 | {':'.join(factors)}")
