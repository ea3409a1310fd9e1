"""GLMM fits by the Laplace approximation beside lme4's glmer and mixedlm's glmer.

Check value: the log-likelihood (lme4's default PIRLS tolerance leaves its value up to ~5e-4
below the exact Laplace optimum that mixedfx and mixedlm report).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Case

VERBAGG = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
CROSSED = "y ~ x + (1 | user) + (1 | item)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _mixedfx(formula: str, **kw):
    def run(data: pd.DataFrame) -> float:
        import mixedfx

        return float(mixedfx.glmm(formula, data, **kw).loglik)
    return run


def _mixedlm(formula: str):
    def run(data: pd.DataFrame) -> float:
        import mixedlm
        from mixedlm import families

        ll = mixedlm.glmer(formula, data, family=families.Binomial()).logLik()
        return float(getattr(ll, "value", ll))
    return run


def _verbagg() -> pd.DataFrame:
    import mixedfx

    v = mixedfx.datasets.load("VerbAgg")
    return v.assign(r2=(v.r2 == "Y").astype(float))  # 0/1 for every peer's CSV reader


def _cbpp() -> pd.DataFrame:
    import mixedfx

    return mixedfx.datasets.load("cbpp")


def _crossed(n: int, users: int, items: int):
    def make() -> pd.DataFrame:
        rng = np.random.default_rng(2026)
        u = rng.integers(0, users, n)
        i = rng.integers(0, items, n)
        x = rng.normal(size=n)
        eta = -0.5 + 0.6 * x + rng.normal(0, 0.8, users)[u] + rng.normal(0, 0.5, items)[i]
        y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
        return pd.DataFrame({"y": y, "x": x, "user": [f"u{k}" for k in u],
                             "item": [f"i{k}" for k in i]})
    return make


def cases(quick: bool) -> list[Case]:
    """cbpp and VerbAgg (Laplace), and a simulated Bernoulli model with crossed factors."""
    n, users, items = (20_000, 1_000, 100) if quick else (200_000, 10_000, 500)
    r_glmer = "m <- glmer({f}, data = d, family = binomial); value <- as.numeric(logLik(m))"
    r_tmb = "m <- glmmTMB({f}, data = d, family = binomial); value <- as.numeric(logLik(m))"

    def tmb(formula: str) -> dict:
        return {"glmmTMB": (r_tmb.format(f=formula), ("glmmTMB",))}

    return [
        Case("cbpp binomial (1|herd) Laplace", _cbpp,
             {"mixedfx": _mixedfx(CBPP)},  # mixedlm's parser rejects cbind(a, b - a)
             r_code=r_glmer.format(f=CBPP), r_factors=("herd", "period"), repeats=3,
             r_peers=tmb(CBPP)),
        Case("VerbAgg (1|id)+(1|item) Laplace", _verbagg,
             {"mixedfx": _mixedfx(VERBAGG), "mixedlm": _mixedlm(VERBAGG)},
             r_code=r_glmer.format(f=VERBAGG),
             r_factors=("id", "item", "Gender", "btype", "situ"), repeats=1 if quick else 3,
             r_peers=tmb(VERBAGG)),
        Case(f"Bernoulli {n:,} rows (1|user)+(1|item) Laplace", _crossed(n, users, items),
             {"mixedfx": _mixedfx(CROSSED), "mixedlm": _mixedlm(CROSSED)},
             r_code=r_glmer.format(f=CROSSED), r_factors=("user", "item"),
             r_peers=tmb(CROSSED),
             slow_peers=() if quick else ("mixedlm",)),
    ]
