"""From formula and data to numeric design: response, fixed-effects matrix, random terms."""

from .build import ModelDesign, build_design
from .reterm import ReTerm

__all__ = ["ModelDesign", "ReTerm", "build_design"]
