"""Column names as R prints them."""

from __future__ import annotations

import re

_TREATMENT = re.compile(r"\[T\.([^\]]*)\]")
_FULL = re.compile(r"\[([^\]]*)\]")
_POWER = re.compile(r"\s*\*\*\s*")


def r_name(name: str) -> str:
    """Translate a formulaic column name into R's spelling.

    ``Intercept`` becomes ``(Intercept)``, ``period[T.2]`` becomes ``period2`` and
    ``recipe[T.B]:temp`` becomes ``recipeB:temp``, ``I(x ** 2)`` becomes ``I(x^2)``.
    """
    if name == "Intercept":
        return "(Intercept)"
    return _POWER.sub("^", _FULL.sub(r"\1", _TREATMENT.sub(r"\1", name)))
