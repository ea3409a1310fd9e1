"""Functions a formula may call, under the names R users write.

lme4 formulas use R's functions (``log(x)``, ``sin(2*pi*Time)``, ``sqrt(x)``, ``I(x^2)``);
formulaic evaluates terms as Python, so these names are supplied as the evaluation context,
and ``^`` inside ``I(...)`` is read as a power, as R reads it. numpy is available as ``np``.
"""

from __future__ import annotations

import re

import numpy as np

FORMULA_CONTEXT: dict[str, object] = {
    "np": np,
    "numpy": np,
    "pi": np.pi,
    "exp": np.exp,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "floor": np.floor,
    "ceiling": np.ceil,
    "round": np.round,
}
"""Names a formula may use besides the data's columns."""

_I_CALL = re.compile(r"\bI\(")


def r_powers(expr: str) -> str:
    """Rewrite ``^`` inside ``I(...)`` calls as ``**`` (R's power operator).

    Outside ``I()`` a ``^`` keeps its formula meaning (interaction expansion), which
    formulaic implements.

    Examples
    --------
    >>> r_powers("x + I(x^2) + (a + b)^2")
    'x + I(x**2) + (a + b)^2'
    """
    out, pos = [], 0
    for match in _I_CALL.finditer(expr):
        if match.start() < pos:
            continue
        out.append(expr[pos:match.end()])
        depth, k = 1, match.end()
        while k < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[k], 0)
            k += 1
        out.append(expr[match.end():k].replace("^", "**"))
        pos = k
    out.append(expr[pos:])
    return "".join(out)
