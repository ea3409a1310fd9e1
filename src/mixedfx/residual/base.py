"""The one interface every residual structure implements.

A *structure* is what the user writes (``AR1(group="Mare")``): data-free, it names its
columns. ``bind(frame, ...)`` checks it against the model frame and returns a *bound*
structure that knows the rows: its parameters live on an unconstrained scale (what the
optimizer sees) and map to nlme's parameterization for reporting.

A bound correlation structure gives, for its parameters, a sparse whitening matrix ``W``
(n x n, rows of one group mix only among themselves) with ``W C W' = I`` for the residual
correlation matrix ``C``, and ``log det C``. A bound variance function gives the standard
deviation multiplier ``v_i`` of each row (residual sd = sigma v_i). Adding ARMA(p, q) or a
spatial correlation is one new class with these few methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
import scipy.sparse as sp


class Bound(ABC):
    """A residual structure bound to the rows of one model frame.

    Attributes
    ----------
    label : str
        What it is in nlme's words (``"AR(1)"``, ``"Different standard deviations per
        stratum"``).
    formula : str
        nlme's formula of the structure (``"~1 | Mare"``).
    names : tuple of str
        Names of the estimated parameters in nlme's parameterization.
    """

    label: str
    formula: str
    names: tuple[str, ...]

    @property
    def nparams(self) -> int:
        """Number of estimated parameters."""
        return len(self.names)

    @abstractmethod
    def start(self) -> np.ndarray:
        """Starting values on the unconstrained scale."""

    @abstractmethod
    def natural(self, x: np.ndarray) -> np.ndarray:
        """Parameters in nlme's parameterization from unconstrained ``x``."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Keys of :meth:`report` (the names, unless reporting adds fixed values)."""
        return self.names

    def report(self, x: np.ndarray) -> dict[str, float]:
        """Parameters to show and store (``residual_params``), by name."""
        return dict(zip(self.names, map(float, self.natural(x)), strict=True))


class BoundCorrelation(Bound):
    """A within-group correlation structure bound to the rows.

    Attributes
    ----------
    groups : numpy.ndarray
        Group code of each row (int64): rows of different groups are uncorrelated.
    """

    groups: np.ndarray

    @abstractmethod
    def whitener(self, x: np.ndarray) -> tuple[sp.csr_matrix, float]:
        """Whitening matrix ``W`` (CSR, n x n) with ``W C W' = I`` and ``log det C``."""

    def gram_basis(self) -> list[sp.csr_matrix] | None:
        """Fixed matrices B_k with C^-1 = sum_k c_k(x) B_k' B_k, or None.

        When a structure offers them, the cross-products M' C^-1 M of the design are a fixed
        linear combination of the precomputed (B_k M)'(B_k M): an evaluation then costs the
        size of the blocks, not of the data. Optional; the whitener is always used otherwise.
        """
        return None

    def gram_coefficients(self, x: np.ndarray) -> tuple[np.ndarray | None, float]:
        """Coefficients c_k(x) of :meth:`gram_basis` and ``log det C`` (None, inf if invalid)."""
        raise NotImplementedError


class BoundVariance(Bound):
    """A variance function bound to the rows: residual sd of row i is sigma * v_i."""

    needs_fitted: bool = False

    @abstractmethod
    def sd(self, x: np.ndarray, fitted: np.ndarray | None) -> np.ndarray:
        """Standard deviation multipliers v (n,), positive."""


class Structure(ABC):
    """What the user specifies: a correlation structure or a variance function."""

    @abstractmethod
    def columns(self) -> tuple[str, ...]:
        """Data columns the structure needs (for missing-value handling)."""

    @abstractmethod
    def bind(self, frame: pd.DataFrame, default_group: tuple[str, ...] | None) -> Bound:
        """Check the structure against the model frame and bind it to its rows.

        Parameters
        ----------
        frame : pandas.DataFrame
            The rows used by the fit (missing values already dropped), with the structure's
            columns.
        default_group : tuple of str or None
            Grouping factor to use when the structure names none: the random-effects
            grouping factor when there is exactly one (as nlme's default), else None.
        """
