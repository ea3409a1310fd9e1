"""Exceptions and warnings raised by mixedfx, each naming what is at fault and how to fix it."""

from __future__ import annotations


class MixedFXError(ValueError):
    """Base class for user-facing errors of mixedfx."""


class FormulaError(MixedFXError):
    """A formula that cannot be parsed; the message points at the position.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    formula : str
        The formula as given.
    pos : int, optional
        0-based character position of the problem; a caret is drawn under it.
    """

    def __init__(self, message: str, formula: str = "", pos: int | None = None) -> None:
        self.formula = formula
        self.pos = pos
        text = message
        if formula:
            text += f"\n  {formula}"
            if pos is not None:
                text += "\n  " + " " * max(pos, 0) + "^"
        super().__init__(text)


class DataError(MixedFXError):
    """Data that cannot be used as given (unknown column, wrong type, too few rows...)."""


class ConvergenceWarning(UserWarning):
    """The optimizer did not report convergence; the estimates may not be the optimum."""


class SingularFitWarning(UserWarning):
    """Boundary (singular) fit: a variance is zero or a correlation is +-1."""


class RankDeficiencyWarning(UserWarning):
    """The fixed-effects model matrix is rank deficient; aliased columns were dropped."""


class MissingDataWarning(UserWarning):
    """Rows with missing values in the columns the model uses were dropped."""
