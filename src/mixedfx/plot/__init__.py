"""Plots of fitted models, each a function taking a result and returning a matplotlib Figure.

matplotlib is an optional dependency (``pip install mixedfx[plot]``); it is imported when a
plot is made. The figures are built with matplotlib's object API (no pyplot state), so they
render headless and in notebooks alike; save them with ``fig.savefig(path)``.

- :func:`caterpillar`: conditional modes with conditional intervals per grouping factor,
  ordered (lme4's ``dotplot(ranef(m, condVar = TRUE))``).
- :func:`residuals`: residuals against fitted values, normal QQ plots of the scaled
  residuals and of each random effect.
- :func:`group_lines`: per-group least-squares lines beside the model's conditional lines,
  with the population line: shrinkage made visible.
- :func:`profile`: zeta traces of the likelihood profile (lme4's ``xyplot(profile(m))``).
- :func:`marginal_vs_conditional`: for GLMMs, the population-averaged mean curve against
  the curve of a typical group (random effects at zero).
"""

from .figures import caterpillar, group_lines, marginal_vs_conditional, profile, residuals

__all__ = ["caterpillar", "group_lines", "marginal_vs_conditional", "profile", "residuals"]
