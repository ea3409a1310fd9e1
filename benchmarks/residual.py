"""Residual covariance structures (nlme's corAR1 and friends) beside nlme.

Ovary ``follicles ~ sin(2 pi Time) + cos(2 pi Time)``, random intercept per Mare, AR(1) within
Mare (REML, nlme's textbook example); a simulated AR(1) panel of 100,000 rows (10,000
subjects x 10 times, random intercept per subject, AR(1) in time within subject); and the
same panel with a crossed item factor, which nlme cannot fit. The check value is the
log-likelihood (REML), comparable between columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Case


def simulate_ar1_panel(n: int = 100_000, times: int = 10, items: int = 500, phi: float = 0.6,
                       seed: int = 20261125) -> pd.DataFrame:
    """Subjects observed at ``times`` equally spaced times, AR(1) errors within subject.

    Parameters
    ----------
    n, times : int
        Rows and observations per subject (n / times subjects).
    items : int
        Levels of an item factor drawn per row (crossed with subjects; used by one case).
    phi : float
        Autocorrelation of the errors.
    seed : int
        Seed of numpy's default generator.
    """
    rng = np.random.default_rng(seed)
    subjects = n // times
    e = np.empty((subjects, times))
    e[:, 0] = rng.normal(size=subjects)
    for t in range(1, times):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=subjects)
    x = rng.normal(size=(subjects, times))
    item = rng.integers(items, size=(subjects, times))
    y = (1.0 + 0.5 * x + 0.8 * rng.normal(size=(subjects, 1))
         + 0.5 * rng.normal(size=items)[item] + 1.2 * e)
    return pd.DataFrame({"y": y.ravel(), "x": x.ravel(),
                         "subj": np.repeat(np.arange(subjects), times),
                         "t": np.tile(np.arange(times), subjects), "item": item.ravel()})


def _ovary() -> pd.DataFrame:
    import mixedfx

    d = mixedfx.datasets.load("Ovary")
    d["sin2"] = np.sin(2 * np.pi * d.Time)
    d["cos2"] = np.cos(2 * np.pi * d.Time)
    return d


def _mixedfx(formula: str, group: str, time: str | None):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.lmm(formula, data, correlation=mixedfx.AR1(group, time=time)).loglik
    return run


def cases(quick: bool) -> list[Case]:
    """Ovary, the AR(1) panel (10,000 rows when ``quick``) and the panel with a crossed item."""
    n = 10_000 if quick else 100_000
    panel = "y ~ x + (1 | subj)"
    crossed = "y ~ x + (1 | subj) + (1 | item)"
    return [
        Case("Ovary AR(1) within Mare REML", _ovary,
             {"mixedfx": _mixedfx("follicles ~ sin2 + cos2 + (1 | Mare)", "Mare", None)},
             r_code="m <- lme(follicles ~ sin2 + cos2, random = ~ 1 | Mare, data = d, "
                    "correlation = corAR1()); value <- as.numeric(logLik(m))",
             r_factors=("Mare",), r_packages=("nlme",), repeats=10),
        Case(f"AR(1) panel {n:,} rows (1|subj) REML", lambda: simulate_ar1_panel(n),
             {"mixedfx": _mixedfx(panel, "subj", "t")},
             r_code="m <- lme(y ~ x, random = ~ 1 | subj, data = d, "
                    "correlation = corAR1(form = ~ t | subj)); value <- as.numeric(logLik(m))",
             r_factors=("subj",), r_packages=("nlme",), repeats=2),
        Case(f"AR(1) panel {n:,} rows (1|subj)+(1|item) REML", lambda: simulate_ar1_panel(n),
             {"mixedfx": _mixedfx(crossed, "subj", "t")}),
    ]
