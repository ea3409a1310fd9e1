"""lme4 formula syntax: the fixed part for formulaic, the bar terms for the random part."""

from .parser import ParsedFormula, RandomTerm, parse_formula

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]
