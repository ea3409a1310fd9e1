"""Linear mixed models: the three cases of the engine issue.

sleepstudy ``Reaction ~ Days + (Days | Subject)`` (REML), InstEval
``y ~ 1 + service + (1|s) + (1|d) + (1|dept)`` (ML) and a simulated 1,000,000-row
``y ~ 1 + x + (1 + x | user) + (1 | item)`` with 20,000 users and 2,000 items (REML). The check
value is the objective (REML criterion or ML deviance, lme4's scale) so the columns can be
compared for agreement as well as speed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Case


def simulate_users_items(n: int = 1_000_000, users: int = 20_000, items: int = 2_000,
                         seed: int = 20261124) -> pd.DataFrame:
    """Ratings-like data: correlated random intercept and slope per user, intercept per item.

    Parameters
    ----------
    n, users, items : int
        Rows, users and items; each row draws its user and item uniformly.
    seed : int
        Seed of numpy's default generator.
    """
    rng = np.random.default_rng(seed)
    user = rng.integers(users, size=n)
    item = rng.integers(items, size=n)
    x = rng.normal(size=n)
    cov = np.array([[1.0, 0.3 * 1.0 * 0.5], [0.3 * 1.0 * 0.5, 0.25]])
    ub = rng.multivariate_normal([0.0, 0.0], cov, size=users)
    ib = rng.normal(scale=0.7, size=items)
    y = 1.0 + 0.5 * x + ub[user, 0] + ub[user, 1] * x + ib[item] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "user": pd.Categorical(user),
                         "item": pd.Categorical(item)})


def _mixedfx(formula: str, reml: bool):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        return mixedfx.lmm(formula, data, reml=reml).objective
    return run


def _mixedlm(formula: str, reml: bool):
    def run(data: pd.DataFrame) -> float:
        import mixedlm

        res = mixedlm.lmer(formula, data, REML=reml)
        return -2 * float(res.logLik().value if hasattr(res.logLik(), "value")
                          else res.logLik())
    return run


def _statsmodels_slopes(data: pd.DataFrame) -> float:
    import statsmodels.formula.api as smf

    res = smf.mixedlm("Reaction ~ Days", data, groups=data["Subject"],
                      re_formula="~Days").fit(reml=True)
    return -2 * float(res.llf)


def _statsmodels_crossed(formula: str, vc: dict, reml: bool):
    def run(data: pd.DataFrame) -> float:
        import statsmodels.formula.api as smf

        groups = np.zeros(len(data))
        res = smf.mixedlm(formula, data, groups=groups, vc_formula=vc).fit(reml=reml)
        return -2 * float(res.llf)
    return run


def _sleepstudy() -> pd.DataFrame:
    import mixedfx

    return mixedfx.datasets.load("sleepstudy")


def _insteval() -> pd.DataFrame:
    import mixedfx

    return mixedfx.datasets.load("InstEval")


def cases(quick: bool) -> list[Case]:
    """The engine issue's cases (``quick``: a 100,000-row version of the simulated one)."""
    sleep = "Reaction ~ Days + (Days | Subject)"
    inst = "y ~ 1 + service + (1|s) + (1|d) + (1|dept)"
    big = "y ~ 1 + x + (1 + x | user) + (1 | item)"
    n_big = 100_000 if quick else 1_000_000
    return [
        Case("sleepstudy (Days|Subject) REML", _sleepstudy,
             {"mixedfx": _mixedfx(sleep, True), "mixedlm": _mixedlm(sleep, True),
              "statsmodels": _statsmodels_slopes},
             r_code=f"m <- lmer({sleep}, d); value <- REMLcrit(m)",
             r_factors=("Subject",), repeats=20),
        Case("InstEval 3 crossed ML (73k rows)", _insteval,
             {"mixedfx": _mixedfx(inst, False), "mixedlm": _mixedlm(inst, False),
              "statsmodels": _statsmodels_crossed(
                  "y ~ 1 + service", {"s": "0 + C(s)", "d": "0 + C(d)", "dept": "0 + C(dept)"},
                  False)},
             r_code=f"m <- lmer({inst}, d, REML = FALSE); value <- deviance(m)",
             r_factors=("s", "d", "dept", "service"), repeats=3,
             slow_peers=("statsmodels",)),
        Case(f"simulated {n_big:,} rows (1+x|user)+(1|item) REML",
             lambda: simulate_users_items(n_big),
             {"mixedfx": _mixedfx(big, True), "mixedlm": _mixedlm(big, True)},
             r_code=f"m <- lmer({big}, d); value <- REMLcrit(m)",
             r_factors=("user", "item"), slow_peers=() if quick else ("mixedlm", "R")),
    ]
