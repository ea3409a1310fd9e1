"""The PIRLS refill of the engine's blocks equals build_blocks with the same weights."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import mixedfx  # noqa: F401  (loads mixedfx.glmm.*)
from mixedfx.families import get_family
from mixedfx.linalg.blocks import build_blocks

FORMULAS = ["y ~ x + f + (1 + x | g) + (1 | h) + (1 | k)", "y ~ x + (1 | g) + (x | h)",
            "y ~ x + (1 + x | g)", "y ~ x + (1 | g) + (1 | h)"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 2000
    return pd.DataFrame({"y": rng.integers(0, 2, n).astype(float), "x": rng.normal(size=n),
                         "f": rng.choice(list("abc"), n),
                         "g": rng.integers(0, 60, n).astype(str),
                         "h": rng.integers(0, 25, n).astype(str),
                         "k": rng.integers(0, 9, n).astype(str)})


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("free_beta", [False, True])
def test_refill_equals_build_blocks(frame, formula, free_beta):
    model_mod = sys.modules["mixedfx.glmm.model"]
    pirls = sys.modules["mixedfx.glmm.pirls"]
    model = model_mod.GlmmModel.build(formula, frame, get_family("binomial"))
    cross = pirls.PirlsEngine(model, free_beta=free_beta).cross
    rng = np.random.default_rng(len(formula))
    for _ in range(2):  # refilled in place twice: no stale sums
        w, z = rng.random(len(frame)), rng.normal(size=len(frame))
        got = cross.update(w, z)
        ref = build_blocks(cross.terms, cross.X, z, w)
        for name in ("A11", "A21_val", "A22"):
            np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-12,
                                       atol=1e-12 * np.abs(getattr(ref, name)).max())
