"""AR(1) and continuous-time AR(1) correlation: corr(e_i, e_j) = phi^|t_i - t_j| in a group.

Both are Markov: given the previous observation of its group, an observation is independent
of the earlier ones. With r_i = phi^(t_i - t_prev(i)) the whitened residuals are

    e~_first = e_first,        e~_i = (e_i - r_i e_prev(i)) / sqrt(1 - r_i^2),

so ``W`` is bidiagonal in time order (two entries per row) and
``log det C = sum_i log(1 - r_i^2)``. Gaps in an integer time (AR(1)) and irregular times
(CAR(1)) are handled by the same exponent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from .base import BoundCorrelation, Structure
from .grouping import (
    check_columns,
    group_codes,
    group_factors,
    predecessors,
    resolve_group,
    time_values,
)


class MarkovCorrelation(BoundCorrelation):
    """Bidiagonal whitening from each row's predecessor and time gap.

    Parameters
    ----------
    groups, prev, gap : numpy.ndarray
        Group code, previous row in the group (-1 for none) and time gap of each row.
    phi_of : callable
        Map from the unconstrained parameter to phi.
    phi_inverse : callable
        Its inverse (for starting values).
    label, formula : str
        nlme's name and formula of the structure.
    """

    names = ("Phi",)

    def __init__(self, groups, prev, gap, phi_of, phi_inverse, label, formula) -> None:
        self.groups, self.prev, self.gap = groups, prev, gap
        self.phi_of, self.phi_inverse = phi_of, phi_inverse
        self.label, self.formula = label, formula
        n = len(prev)
        has = prev >= 0
        self._has = has
        counts = 1 + has.astype(np.int64)
        self._indptr = np.concatenate([[0], np.cumsum(counts)])
        indices = np.empty(self._indptr[-1], dtype=np.int64)
        diag_pos = self._indptr[1:] - 1  # the diagonal entry comes last in its row
        indices[diag_pos] = np.arange(n)
        self._off_pos = self._indptr[:-1][has]
        indices[self._off_pos] = prev[has]
        self._indices, self._diag_pos = indices, diag_pos
        self._gap = gap[has]
        self._classes: tuple[np.ndarray, np.ndarray] | None = None

    def start(self) -> np.ndarray:
        return np.array([self.phi_inverse(0.2)])

    def natural(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.phi_of(float(x[0]))])

    def whitener(self, x: np.ndarray) -> tuple[sp.csr_matrix, float]:
        phi = self.phi_of(float(x[0]))
        r = np.power(phi, self._gap)
        one_minus = 1.0 - r * r
        if np.any(one_minus <= 0.0):
            return None, np.inf
        scale = 1.0 / np.sqrt(one_minus)
        data = np.ones(len(self._indices))
        data[self._diag_pos[self._has]] = scale
        data[self._off_pos] = -r * scale
        n = len(self.prev)
        W = sp.csr_matrix((data, self._indices, self._indptr), shape=(n, n))
        return W, float(np.sum(np.log(one_minus)))


    def _gap_classes(self) -> tuple[np.ndarray, np.ndarray]:
        if self._classes is None:
            self._classes = np.unique(self._gap, return_inverse=True)
        return self._classes

    def gram_basis(self) -> list[sp.csr_matrix] | None:
        """Selectors of the first rows; per distinct gap, of the rows (E), of their
        predecessors (F) and of the differences row - predecessor (D).

        Row i with predecessor p and r = phi^gap contributes
        ``(m_i - r m_p)(m_i - r m_p)' / (1 - r^2) = (E - r F) / (1 + r) + r D / (1 - r^2)``
        in Gram terms, without cancellation as r approaches 1.
        """
        gaps, cls = self._gap_classes()
        if len(gaps) > MAX_GAP_CLASSES:
            return None
        n = len(self.prev)
        rows_with = np.flatnonzero(self._has)
        first = np.flatnonzero(~self._has)
        basis = [_selector(first, n)]
        for k in range(len(gaps)):
            rows = rows_with[cls == k]
            prev = self.prev[rows]
            m = len(rows)
            basis.append(_selector(rows, n))
            basis.append(_selector(prev, n))
            data = np.column_stack([np.ones(m), -np.ones(m)]).ravel()
            cols = np.column_stack([rows, prev]).ravel()
            basis.append(sp.csr_matrix((data, cols, np.arange(0, 2 * m + 1, 2)), shape=(m, n)))
        return basis

    def gram_coefficients(self, x: np.ndarray) -> tuple[np.ndarray | None, float]:
        gaps, cls = self._gap_classes()
        r = np.power(self.phi_of(float(x[0])), gaps)
        one_minus = 1.0 - r * r
        if np.any(one_minus <= 0.0):
            return None, np.inf
        coef = np.column_stack([1.0 / (1.0 + r), -r / (1.0 + r), r / one_minus]).ravel()
        counts = np.bincount(cls, minlength=len(gaps))
        return np.concatenate([[1.0], coef]), float(np.sum(counts * np.log(one_minus)))


MAX_GAP_CLASSES = 8  # beyond this many distinct time gaps, whiten at each evaluation instead


def _selector(rows: np.ndarray, n: int) -> sp.csr_matrix:
    """(len(rows) x n) matrix picking the given rows."""
    m = len(rows)
    return sp.csr_matrix((np.ones(m), rows, np.arange(m + 1)), shape=(m, n))


def _bind_markov(frame, factors, time, default_group, what, label, integer_time, phi_of,
                 phi_inverse) -> MarkovCorrelation:
    factors = resolve_group(factors, default_group, what)
    check_columns(frame, factors + ((time,) if time else ()), what)
    groups = group_codes(frame, factors)
    t = time_values(frame, time, what) if time else None
    if t is not None and integer_time and np.any(t != np.round(t)):
        raise DataError(f"{what}: time column '{time}' must hold integers (positions); for "
                        "continuous times use mixedfx.CAR1")
    group_name = ":".join(factors)
    prev, gap = predecessors(groups, t, what, group_name, time)
    formula = f"~{time or 1} | {group_name}"
    return MarkovCorrelation(groups, prev, gap, phi_of, phi_inverse, label, formula)


@dataclass(frozen=True)
class AR1(Structure):
    """First-order autoregressive residuals within groups (nlme's ``corAR1``).

    Parameters
    ----------
    group : str or list of str, optional
        Column(s) whose levels hold correlated observations (``"Mare"``, ``"a:b"``). By
        default the model's random-effects grouping factor when it has exactly one.
    time : str, optional
        Integer time (position) column: observations ordered by it, gaps allowed
        (correlation phi^lag). By default the row order within each group, as nlme.

    Notes
    -----
    corr(e_i, e_j) = phi^|t_i - t_j|, -1 < phi < 1, estimated as ``phi = tanh(x)``.
    """

    group: str | tuple[str, ...] | None = None
    time: str | None = None

    def columns(self) -> tuple[str, ...]:
        return (group_factors(self.group) or ()) + ((self.time,) if self.time else ())

    def bind(self, frame: pd.DataFrame, default_group) -> MarkovCorrelation:
        return _bind_markov(frame, group_factors(self.group), self.time, default_group,
                            "AR1", "AR(1)", True, np.tanh, np.arctanh)


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class CAR1(Structure):
    """Continuous-time AR(1) residuals within groups (nlme's ``corCAR1``).

    Parameters
    ----------
    group : str or list of str, optional
        Grouping column(s); by default the model's single random-effects grouping factor.
    time : str
        Numeric time column (any real values, distinct within a group).

    Notes
    -----
    corr(e_i, e_j) = phi^|t_i - t_j|, 0 < phi < 1, estimated as ``phi = 1 / (1 + exp(-x))``.
    """

    group: str | tuple[str, ...] | None = None
    time: str = ""

    def columns(self) -> tuple[str, ...]:
        return (group_factors(self.group) or ()) + ((self.time,) if self.time else ())

    def bind(self, frame: pd.DataFrame, default_group) -> MarkovCorrelation:
        if not self.time:
            raise DataError("CAR1: give time= (the numeric time column); for observations "
                            "equally spaced in row order use mixedfx.AR1")
        return _bind_markov(frame, group_factors(self.group), self.time, default_group,
                            "CAR(1)", "Continuous AR(1)", False, _logistic, _logit)
