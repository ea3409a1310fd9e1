"""Intervals beside lme4: profile confidence intervals and the parametric bootstrap.

Each cell times the fit plus the intervals (R: ``lmer`` then ``confint(..., method=
"profile")``, or ``bootMer`` with lme4's confint statistics). Check values: the lower profile
limit of the first variance parameter (equal between columns), and for the bootstrap the
bootstrap standard error of the slope (the two use different random numbers, so it agrees
only to a few per cent).
"""

from __future__ import annotations

import pandas as pd

from .common import Case


def _data(name: str):
    def load() -> pd.DataFrame:
        import mixedfx

        return mixedfx.datasets.load(name)
    return load


def _profile(formula: str):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        res = mixedfx.lmm(formula, data)
        return float(res.confint(method="profile").iloc[0, 0])
    return run


def _bootstrap(formula: str, n: int, n_jobs: int):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        res = mixedfx.lmm(formula, data)
        boot = res.bootstrap(n, seed=1, n_jobs=n_jobs, progress=False)
        return float(boot.replicates["Days"].std())
    return run


def cases(quick: bool) -> list[Case]:
    """Profile intervals of sleepstudy, Penicillin and Pastes; a sleepstudy bootstrap."""
    sleep = "Reaction ~ Days + (Days | Subject)"
    pen = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    pastes = "strength ~ 1 + (1 | batch/cask)"
    prof_r = ("m <- lmer({f}, data = d); ci <- suppressWarnings(confint(m, method = 'profile',"
              " oldNames = FALSE)); value <- ci[1, 1]")
    n = 100 if quick else 500
    boot_r = (f"m <- lmer({sleep}, data = d); "
              f"b <- bootMer(m, function(x) fixef(x), nsim = {n}, seed = 1); "
              "value <- sd(b$t[, 2])")
    return [
        Case("profile CI sleepstudy (Days|Subject)", _data("sleepstudy"),
             {"mixedfx": _profile(sleep)}, r_code=prof_r.format(f=sleep),
             r_factors=("Subject",), repeats=3),
        Case("profile CI Penicillin crossed", _data("Penicillin"),
             {"mixedfx": _profile(pen)}, r_code=prof_r.format(f=pen),
             r_factors=("plate", "sample"), repeats=3),
        Case("profile CI Pastes nested", _data("Pastes"),
             {"mixedfx": _profile(pastes)}, r_code=prof_r.format(f=pastes),
             r_factors=("batch", "cask"), repeats=3),
        Case(f"bootstrap {n} sleepstudy (Days|Subject)", _data("sleepstudy"),
             {"mixedfx": _bootstrap(sleep, n, 1), "mixedfx n_jobs=2": _bootstrap(sleep, n, 2)},
             r_code=boot_r, r_factors=("Subject",)),
    ]
