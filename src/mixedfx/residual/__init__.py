"""Structured residual covariance for linear mixed models (nlme's correlation and variance
structures) combined with any random-effects structure of the engine, crossed included.

Correlation within groups: :class:`AR1`, :class:`CAR1`, :class:`CompSymm`. Variance
functions: :class:`VarIdent`, :class:`VarPower`. See ``docs/residual.md``.
"""

from .base import Bound, BoundCorrelation, BoundVariance, Structure
from .compsymm import CompSymm
from .fit import fit_model, fit_structured
from .markov import AR1, CAR1
from .model import StructuredModel
from .variance import VarIdent, VarPower

__all__ = ["AR1", "CAR1", "Bound", "BoundCorrelation", "BoundVariance", "CompSymm",
           "Structure", "StructuredModel", "VarIdent", "VarPower", "fit_model",
           "fit_structured"]
