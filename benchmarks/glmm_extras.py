"""PQL fits beside MASS::glmmPQL, glmer.nb beside lme4, and predictions on many new rows
beside lme4's predict().

Check values: the intercept for PQL fits, theta for the negative binomial, the mean
prediction for predictions, so the
columns can be compared for agreement as well as speed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import Case

COUNTS = Path(__file__).parents[1] / "tests" / "reference" / "counts_sim.csv"


def _pql(formula: str, family: str):
    def run(data: pd.DataFrame) -> float:
        from mixedfx.glmm.pql import fit_pql

        return float(fit_pql(formula, data, family).fixef.iloc[0])
    return run


def _cbpp() -> pd.DataFrame:
    import mixedfx

    return mixedfx.datasets.load("cbpp")


def _new_sleep_rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    subjects = [308, 309, 310, 330, 331, 332, 333, 334, 335, 337, 349, 350, 351, 352, 369,
                370, 371, 372]
    return pd.DataFrame({"Days": rng.uniform(0, 9, n),
                         "Subject": rng.choice(subjects, n).astype(str)})


def _predict_sleep(data: pd.DataFrame) -> float:
    import mixedfx

    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", mixedfx.datasets.load("sleepstudy"))
    return float(res.predict(data).mean())


def _marginal_cbpp(data: pd.DataFrame) -> float:
    import mixedfx
    from mixedfx.glmm.pql import fit_pql

    res = fit_pql("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                  mixedfx.datasets.load("cbpp"), "binomial")
    return float(res.predict(data, kind="marginal").mean())


def _negbin(formula: str):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        return float(mixedfx.glmm(formula, data, family="negbinomial").family_object.theta)
    return run


def cases(quick: bool) -> list[Case]:
    """PQL on cbpp and on 360 simulated nested counts, glmer.nb, predictions for many rows."""
    cbpp = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    nested = "y ~ x + z + trt + (1 | site/plot)"
    n_new = 10_000 if quick else 100_000
    return [
        Case("PQL cbpp binomial (1|herd)", _cbpp, {"mixedfx": _pql(cbpp, "binomial")},
             r_code=("m <- glmmPQL(cbind(incidence, size - incidence) ~ period, "
                     "random = ~ 1 | herd, family = binomial, data = d, verbose = FALSE); "
                     "value <- fixef(m)[[1]]"),
             r_factors=("herd", "period"), r_packages=("MASS", "nlme"), repeats=5),
        Case("PQL Poisson (1|site/plot), 360 rows", lambda: pd.read_csv(COUNTS),
             {"mixedfx": _pql(nested, "poisson")},
             r_code=("m <- glmmPQL(y ~ x + z + trt, random = ~ 1 | site/plot, "
                     "family = poisson, data = d, verbose = FALSE); value <- fixef(m)[[1]]"),
             r_factors=("site", "plot", "trt"), r_packages=("MASS", "nlme"), repeats=5),
        Case("glmer.nb y ~ x + trt + (1|site), 360 rows", lambda: pd.read_csv(COUNTS),
             {"mixedfx": _negbin("y ~ x + trt + (1 | site)")},
             r_code=("m <- glmer.nb(y ~ x + trt + (1 | site), data = d); "
                     "value <- getME(m, 'glmer.nb.theta')"),
             r_factors=("site", "trt")),
        Case(f"predict sleepstudy, {n_new:,} new rows (fit + predict)",
             lambda: _new_sleep_rows(n_new), {"mixedfx": _predict_sleep},
             r_code=("m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy); "
                     "d$Subject <- factor(d$Subject); value <- mean(predict(m, newdata = d))"),
             repeats=3),
        Case(f"marginal means cbpp PQL logit, {n_new:,} rows (fit + predict)",
             lambda: pd.DataFrame({"period": np.resize([1, 2, 3, 4], n_new)}),
             {"mixedfx": _marginal_cbpp}, repeats=3),
    ]
