"""Generalized linear mixed models: Laplace, adaptive Gauss-Hermite quadrature and PQL.

Public entry point: :func:`mixedfx.glmm` (``mixedfx.glmm.api.glmm``).
"""

from .api import fit_model, glmm
from .result import GlmmResult

__all__ = ["GlmmResult", "fit_model", "glmm"]
