"""The numeric GLMM: response on the family's scale, prior weights, X and random terms.

Responses as lme4 takes them for the binomial: 0/1 (or a two-level factor, first level 0),
proportions with ``weights=`` the numbers of trials, or ``cbind(successes, failures)`` in the
formula (proportions with the trials as prior weights, times any ``weights``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..design import ModelDesign, ReTerm
from ..design.build import as_pandas
from ..errors import DataError
from ..families import Family
from ..fixed import drop_aliased
from ..formula import parse_formula
from ..lmm import ThetaMap, display_order, engine_permutation
from .pql import pql_design


def _binary_response(data: pd.DataFrame, name: str, family: Family) -> pd.DataFrame:
    """A copy of ``data`` with a non-numeric binomial response coded 0/1 (first level 0,
    as R's ``glm``); the data unchanged otherwise."""
    col = data[name]
    if pd.api.types.is_bool_dtype(col):
        return data.assign(**{name: col.astype(float)})
    if pd.api.types.is_numeric_dtype(col):
        return data
    if family.name != "binomial":
        raise DataError(f"the response '{name}' is not numeric; the {family.name} family needs "
                        "numbers")
    cat = col.astype("category")
    if len(cat.cat.categories) > 2:
        levels = list(map(str, cat.cat.categories))
        raise DataError(f"the binomial response '{name}' is a factor with {len(levels)} levels "
                        f"({', '.join(levels[:5])}); as R, the first level is failure and all "
                        "others success: recode it to 0/1 to say which")
    codes = cat.cat.codes.to_numpy()
    coded = np.where(codes < 0, np.nan, (codes > 0).astype(float))
    return data.assign(**{name: coded})


def glmm_design(formula: str, data: object, family: Family, weights: object = None,
                offset: object = None) -> ModelDesign:
    """The design of a GLMM, its response checked against the family.

    Raises
    ------
    DataError
        When the response does not fit the family (named in the message).
    """
    parsed = parse_formula(formula)
    if not parsed.random:
        raise DataError("the formula has no random-effects term such as (1 | group); for a "
                        "model without random effects fit a GLM")
    frame = as_pandas(data)
    if parsed.response in frame.columns:
        frame = _binary_response(frame, parsed.response, family)
    design = pql_design(formula, frame, weights, offset)
    family.validate(design.y, design.weights if weights is not None or
                    "cbind" in parsed.response else None, name=f"response '{parsed.response}'")
    return design


@dataclass(frozen=True, eq=False)
class GlmmModel:
    """A GLMM ready to evaluate (immutable).

    Attributes
    ----------
    formula : str
    design : ModelDesign
    family : Family
    X : numpy.ndarray
        Fixed-effects matrix without aliased columns.
    fixed_names : tuple of str
    dropped : tuple of str
        Aliased columns removed from X.
    terms : list of ReTerm
        Display order (lme4's).
    perm : list of int
        Engine order (indices into ``terms``).
    tmap : ThetaMap
    """

    formula: str
    design: ModelDesign
    family: Family
    X: np.ndarray
    fixed_names: tuple[str, ...]
    dropped: tuple[str, ...]
    terms: list[ReTerm]
    perm: list[int]
    tmap: ThetaMap

    @classmethod
    def build(cls, formula: str, data: object, family: Family, weights: object = None,
              offset: object = None) -> GlmmModel:
        """Parse, materialize and check the model."""
        design = glmm_design(formula, data, family, weights, offset)
        return cls.from_design(parse_formula(formula).text, design, family)

    @classmethod
    def from_design(cls, formula: str, design: ModelDesign, family: Family) -> GlmmModel:
        """The model of an already built design (also how a saved result's model returns)."""
        X, names = drop_aliased(design.X, design.fixed_names, design.weights)
        terms = display_order(design.terms)
        perm = engine_permutation(terms)
        return cls(formula=formula, design=design, family=family, X=X,
                   fixed_names=tuple(names),
                   dropped=tuple(n for n in design.fixed_names if n not in names),
                   terms=terms, perm=perm, tmap=ThetaMap(terms, perm))

    def with_response(self, y: np.ndarray) -> GlmmModel:
        """The same design with another response (on the family's scale), e.g. simulated."""
        return replace(self, design=replace(self.design, y=np.asarray(y, dtype=float)))

    def with_family(self, family: Family) -> GlmmModel:
        """The same design with another family (negative binomial at a new theta)."""
        return replace(self, family=family)

    @property
    def y(self) -> np.ndarray:
        return self.design.y

    @property
    def prior(self) -> np.ndarray:
        return self.design.weights

    @property
    def offset(self) -> np.ndarray:
        return self.design.offset

    @property
    def engine_terms(self) -> list[ReTerm]:
        return [self.terms[k] for k in self.perm]

    @property
    def theta_lower(self) -> np.ndarray:
        return np.concatenate([t.theta_lower_bounds() for t in self.terms])

    @property
    def theta_initial(self) -> np.ndarray:
        return np.concatenate([t.theta_initial() for t in self.terms])
