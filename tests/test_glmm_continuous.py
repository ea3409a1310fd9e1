"""Gamma and inverse Gaussian GLMMs (log link, Laplace) against lme4's glmer.

The data are simulated by :func:`write_data` (``python -m tests.test_glmm_continuous``
rewrites the CSVs); ``tests/reference/continuous_glmm_refs.R`` fits them with lme4 at tight
tolerances and writes ``continuous_glmm.json``.

What agrees and what differs by definition:
- fixed effects and theta (the random-effect sd on the link scale, relative to 1) agree to
  1e-4;
- the log-likelihood is lme4's plus exactly 1: R's ``Gamma()$aic`` and
  ``inverse.gaussian()$aic`` add 2 for the dispersion parameter, and lme4's ``logLik`` is
  minus half of that AIC, while mixedfx reports the log-likelihood itself;
- lme4 prints the random-effect sd as theta times its ``sigma()``; mixedfx reports theta's
  sd on the link scale and the dispersion (mean deviance) in the Residual row;
- standard errors agree within about 2%: both use the finite-difference Hessian of the
  Laplace deviance, whose dispersion lme4 estimates differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from tests.conftest import load_reference

REFERENCE = Path(__file__).parent / "reference"
CASES = [("gamma_log", "gamma_sim.csv", "Gamma"),
         ("invgauss_log", "invgauss_sim.csv", "inverse.gaussian")]


def write_data() -> None:
    """Simulate both data sets (random intercepts over groups, log link)."""
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.4, 30)[g])
    shape = 5.0  # dispersion 0.2
    pd.DataFrame({"y": rng.gamma(shape, mu / shape), "x": x, "g": [f"g{k}" for k in g]}
                 ).to_csv(REFERENCE / "gamma_sim.csv", index=False)
    rng = np.random.default_rng(9)
    g = np.repeat(np.arange(25), 16)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.3, 25)[g])
    y = rng.wald(mu, 1 / 0.1)  # dispersion 0.1: variance 0.1 mu^3
    pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]}
                 ).to_csv(REFERENCE / "invgauss_sim.csv", index=False)


@pytest.mark.parametrize(("key", "file", "family"), CASES)
def test_against_lme4(key: str, file: str, family: str) -> None:
    ref = load_reference("continuous_glmm")[key]
    d = pd.read_csv(REFERENCE / file)
    res = mixedfx.glmm("y ~ x + (1 | g)", d, family=family, link="log")
    names = list(ref["fixef"])
    np.testing.assert_allclose(res.fixef[names], list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.theta, [ref["theta"]], rtol=1e-4)
    assert res.loglik == pytest.approx(ref["loglik"] + 1.0, abs=1e-4)
    np.testing.assert_allclose(res.se[names], list(ref["se"].values()), rtol=0.025)
    # lme4's printed sd is theta * sigma; mixedfx's is theta on the link scale
    assert res.varcorr.sdcor.iloc[0] == pytest.approx(ref["sd_g"] / ref["sigma"], rel=1e-4)


if __name__ == "__main__":
    write_data()
