"""The moment start computed from the engine's blocks (out of core) equals the row-wise one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.lmm import LmmModel
from mixedfx.outofcore.model import AggregatedModel
from mixedfx.start import moment_start_blocks

CASES = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes"),
    ("distance ~ age + (age | Subject)", "Orthodont"),
]


def _block_theta(model: LmmModel) -> np.ndarray:
    """AggregatedModel's moment start on an in-memory model's blocks."""
    agg = AggregatedModel.__new__(AggregatedModel)
    agg.blocks, agg.terms, agg.perm, agg.tmap = model.blocks, model.terms, model.perm, model.tmap
    return AggregatedModel.moment_theta(agg)


@pytest.mark.parametrize(("formula", "name"), CASES)
def test_block_moments_equal_row_moments(formula, name):
    model = LmmModel.from_formula(formula, mixedfx.datasets.load(name))
    np.testing.assert_allclose(_block_theta(model), model.moment_theta(), rtol=1e-9, atol=1e-12)


def test_small_chunks_give_the_same_moments(monkeypatch):
    model = LmmModel.from_formula("diameter ~ 1 + (1 | plate) + (1 | sample)",
                                  mixedfx.datasets.load("Penicillin"))
    whole, s2 = moment_start_blocks(model.blocks)
    monkeypatch.setattr("mixedfx.start.A21_CHUNK", 7)  # a few levels per chunk
    parts, s2_parts = moment_start_blocks(model.blocks)
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert s2 == pytest.approx(s2_parts, rel=1e-12)


def test_outofcore_fit_starts_from_moments(tmp_path):
    pytest.importorskip("duckdb")
    rng = np.random.default_rng(4)
    n, ng, nh = 3000, 150, 30
    g, h = rng.integers(0, ng, n), rng.integers(0, nh, n)
    x = rng.normal(size=n)
    u = rng.normal(size=(ng, 2)) * [1.0, 0.4]
    y = 2 + 0.5 * x + u[g, 0] + u[g, 1] * x + 0.6 * rng.normal(size=nh)[h] + rng.normal(size=n)
    frame = pd.DataFrame({"y": y, "x": x, "g": g, "h": h})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path, index=False)
    formula = "y ~ x + (1 + x | g) + (1 | h)"
    mem = mixedfx.lmm(formula, frame)
    ooc = mixedfx.lmm(formula, str(path))
    ident = mixedfx.lmm(formula, str(path), control={"start": "identity"})
    assert ooc.optsum.feval < ident.optsum.feval
    np.testing.assert_allclose(ooc.theta, mem.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ooc.fixef, mem.fixef, rtol=1e-6)
    assert ooc.objective == pytest.approx(mem.objective, rel=1e-10)
