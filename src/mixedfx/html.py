"""Notebook output: HTML for results and their summaries.

Jupyter shows an object's ``_repr_html_`` when it has one. A result renders as small
tables (fit statistics, random effects, the residual structure's parameters when it has
one, fixed effects with their tests); ``summary()``
returns :class:`SummaryText`, a ``str`` that shows itself as preformatted text, so printing,
comparing and writing it work as before.
"""

from __future__ import annotations

import html

import pandas as pd

from .tidy import glance, tidy


class SummaryText(str):
    """The lme4-style summary: a plain string that notebooks show in a monospace block."""

    def _repr_html_(self) -> str:
        return f"<pre style='font-family: monospace'>{html.escape(str(self))}</pre>"


def _table(frame: pd.DataFrame, caption: str, index: bool = False) -> str:
    body = frame.to_html(index=index, na_rep="", float_format=lambda v: f"{v:.6g}",
                         border=0, classes="mixedfx")
    return f"<h4 style='margin: 0.6em 0 0.2em'>{html.escape(caption)}</h4>{body}"


def result_html(res) -> str:
    """HTML of a fitted model: heading, fit statistics, random and fixed effects."""
    kind = type(res).__name__
    criterion = getattr(res, "method", None) or ("REML" if getattr(res, "reml", False) else "ML")
    groups = ", ".join(f"{g}: {n}" for g, n in getattr(res, "ngroups", {}).items())
    head = (f"<p><b>{html.escape(kind)}</b> <code>{html.escape(res.formula)}</code> "
            f"({html.escape(str(criterion))}); {res.nobs} observations"
            f"{'; groups ' + html.escape(groups) if groups else ''}</p>")
    warn = ""
    if not res.converged:
        warn += "<p style='color: #b00'><b>The optimizer did not converge.</b></p>"
    if getattr(res, "singular", False):
        warn += "<p style='color: #b60'>Boundary (singular) fit.</p>"
    stats = glance(res).drop(columns=["converged", "singular"])
    random = res.varcorr.rename(columns={"vcov": "variance", "sdcor": "sd / corr"})
    fixed = tidy(res, effects=("fixed",)).drop(
        columns=["effect", "group", "conf_low", "conf_high"]).set_index("term")
    params = getattr(res, "residual_params", None) or {}
    structure = _table(pd.DataFrame({"parameter": list(params), "estimate": list(
        params.values())}), "Residual structure") if params else ""
    return (f"<div class='mixedfx-result'>{head}{warn}"
            f"{_table(stats, 'Fit')}{_table(random, 'Random effects')}{structure}"
            f"{_table(fixed, 'Fixed effects', index=True)}</div>")
