"""mixedfx: linear and generalized linear mixed models with lme4's formulas.

>>> import mixedfx
>>> res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", mixedfx.datasets.load("sleepstudy"))
>>> print(res.summary())  # doctest: +SKIP
"""

from . import datasets
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    MissingDataWarning,
    MixedFXError,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .glmm import GlmmResult, glmm
from .inference.compare import compare
from .inference.decomposition import anova_table
from .io import load
from .lmm import lmm
from .residual import AR1, CAR1, CompSymm, VarIdent, VarPower
from .results import LmmResult

__version__ = "0.1.0"

__all__ = [
    "AR1", "CAR1", "CompSymm", "VarIdent", "VarPower",
    "ConvergenceWarning", "DataError", "FormulaError", "LmmResult", "MissingDataWarning",
    "MixedFXError", "RankDeficiencyWarning", "SingularFitWarning", "datasets", "lmm",
    "anova_table", "compare", "load", "glmm", "GlmmResult",
]
