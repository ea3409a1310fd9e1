"""Denominator df beside lmerTest and pbkrtest: t tables and type III F tests.

Each cell times the fit plus the table (R: ``lmer`` from lmerTest, then
``summary(m, ddf=...)`` or ``anova(m, ddf=...)``). Check value: the df of the last fixed
effect (or the den_df of the last term), equal between the columns to about 1e-6.
"""

from __future__ import annotations

import pandas as pd

from .common import Case


def _data(name: str):
    def load() -> pd.DataFrame:
        import mixedfx

        return mixedfx.datasets.load(name)
    return load


def _table(formula: str, ddf: str, reml: bool = True, anova: bool = False):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        res = mixedfx.lmm(formula, data, reml=reml)
        if anova:
            return float(res.anova(ddf=ddf)["den_df"].iloc[-1])
        return float(res.coef_table(ddf)["df"].iloc[-1])
    return run


def _r(formula: str, ddf: str, reml: bool = True, anova: bool = False) -> str:
    fit = f"m <- lmer({formula}, data = d, REML = {'TRUE' if reml else 'FALSE'}); "
    if anova:
        return fit + f"a <- anova(m, ddf = '{ddf}'); value <- a$DenDF[nrow(a)]"
    return fit + (f"co <- summary(m, ddf = '{ddf}')$coefficients; "
                  "value <- co[nrow(co), 'df']")


def cases(quick: bool) -> list[Case]:
    """sleepstudy t tables (Satterthwaite, Kenward-Roger), Pastes, InstEval (ML)."""
    sleep = "Reaction ~ Days + (Days | Subject)"
    pastes = "strength ~ 1 + (1 | batch/cask)"
    inst = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"
    pk = ("lmerTest", "pbkrtest")
    out = [
        Case("Satterthwaite t table sleepstudy", _data("sleepstudy"),
             {"mixedfx": _table(sleep, "satterthwaite")},
             r_code=_r(sleep, "Satterthwaite"), r_factors=("Subject",), r_packages=pk,
             repeats=5),
        Case("Kenward-Roger t table sleepstudy", _data("sleepstudy"),
             {"mixedfx": _table(sleep, "kenward-roger")},
             r_code=_r(sleep, "Kenward-Roger"), r_factors=("Subject",), r_packages=pk,
             repeats=5),
        Case("Kenward-Roger t table Pastes nested", _data("Pastes"),
             {"mixedfx": _table(pastes, "kenward-roger")},
             r_code=_r(pastes, "Kenward-Roger"), r_factors=("batch", "cask"),
             r_packages=pk, repeats=3),
    ]
    if not quick:
        out.append(Case("Satterthwaite F test InstEval ML (73k rows)", _data("InstEval"),
                        {"mixedfx": _table(inst, "satterthwaite", reml=False, anova=True)},
                        r_code=_r(inst, "Satterthwaite", reml=False, anova=True),
                        r_factors=("s", "d", "dept", "service"), r_packages=pk,
                        slow_peers=("R",)))
    return out
