"""Summary lines of residual structures, in nlme's layout."""

from __future__ import annotations

from .base import BoundCorrelation


def _values(keys: tuple[str, ...], params: dict[str, float]) -> list[str]:
    names = [str(k) for k in keys]
    big = max(abs(params[k]) for k in keys)
    lead = len(str(int(big))) if big >= 1 else 1
    values = [f"{params[k]:.{max(7 - lead, 0)}f}" for k in keys]
    width = [max(len(a), len(b)) for a, b in zip(names, values, strict=True)]
    return [" " + " ".join(a.rjust(w) for a, w in zip(names, width, strict=True)),
            " " + " ".join(b.rjust(w) for b, w in zip(values, width, strict=True))]


def structure_lines(res) -> list[str]:
    """Lines describing each residual structure and its estimates.

    ``Correlation Structure: AR(1)`` / ``Formula: ~1 | Mare`` / ``Parameter estimate(s):``
    with the values, and ``Variance function:`` / ``Structure: ...`` likewise, as nlme's
    ``summary.lme`` prints them.
    """
    params = res.residual_params
    structures = getattr(res.model, "structures", None)
    if not structures:
        return ["Residual structure parameters:"] + _values(tuple(params), params)
    lines: list[str] = []
    for s in structures:
        if isinstance(s, BoundCorrelation):
            lines += [f"Correlation Structure: {s.label}", f" Formula: {s.formula}",
                      " Parameter estimate(s):"]
        else:
            lines += ["Variance function:", f" Structure: {s.label}",
                      f" Formula: {s.formula}", " Parameter estimates:"]
        lines += _values(s.keys, params) + [""]
    return lines[:-1]
