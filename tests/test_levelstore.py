"""The first term's blocks on disk (LevelStore, ChunkedElimination) give the in-memory
factorization, solution and moment start, whatever the chunk size."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import mixedfx
from mixedfx.linalg.levelstore import LevelStoreWriter
from mixedfx.linalg.pls import PlsFactorizer, profiled_deviance
from mixedfx.linalg.solution import solve
from mixedfx.lmm import LmmModel
from mixedfx.start import moment_start_blocks

CASES = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),  # one term: remainder is X, y
    ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", "InstEval"),  # scalar crossed
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes"),  # nested
]


def _model(formula: str, name: str) -> LmmModel:
    data = mixedfx.datasets.load(name)
    if name == "InstEval":  # keep the test quick: a subset of students
        data = data[data["s"].astype(int) < 400]
    return LmmModel.from_formula(formula, data)


@pytest.mark.parametrize("chunk", [7, 1000, 10**9])
@pytest.mark.parametrize(("formula", "name"), CASES)
def test_stored_blocks_factor_and_solve_like_memory(formula, name, chunk, tmp_path):
    model = _model(formula, name)
    blocks = model.blocks
    stored = blocks.on_disk(str(tmp_path / "store"), chunk_entries=chunk)
    assert stored.store is not None and stored.A21_val.size == 0
    mem, disk = PlsFactorizer(blocks), PlsFactorizer(stored)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = model.tmap.to_engine(np.abs(model.theta0 + rng.normal(0, 0.3,
                                                                      len(model.theta0))))
        dm = profiled_deviance(mem.factor(theta), blocks, True)
        dd = profiled_deviance(disk.factor(theta), stored, True)
        assert dd == pytest.approx(dm, rel=1e-12)
    sm, sd = solve(mem, theta), solve(disk, theta)
    np.testing.assert_allclose(sd.beta, sm.beta, rtol=1e-10, atol=1e-12)
    for bm, bd in zip(sm.b, sd.b, strict=True):
        np.testing.assert_allclose(bd, bm, rtol=1e-10, atol=1e-12)
    for cm, cd in zip(sm.cond_cov, sd.cond_cov, strict=True):
        np.testing.assert_allclose(cd, cm, rtol=1e-10, atol=1e-14)
    cov_m, s2_m = moment_start_blocks(blocks)
    cov_d, s2_d = moment_start_blocks(stored)
    assert s2_d == pytest.approx(s2_m, rel=1e-12)
    for a, b in zip(cov_m, cov_d, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=1e-10)


def test_store_files_are_removed_with_the_store():
    model = _model("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    b = model.blocks
    store = LevelStoreWriter.from_blocks(b.A11, b.A21_ptr, b.A21_idx, b.A21_val, b.m)
    import gc
    import os

    directory = store.directory
    assert os.path.isdir(directory)
    del store
    gc.collect()
    assert not os.path.exists(directory)


def test_writer_rejects_unsorted_entries(tmp_path):
    w = LevelStoreWriter(3, 1, 10, str(tmp_path))
    w.add_entries(np.array([0, 0]), np.array([1, 4]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="sorted"):
        w.add_entries(np.array([0]), np.array([2]), np.ones((1, 1)))
    with pytest.raises(ValueError, match="sorted"):
        w.add_entries(np.array([1, 1]), np.array([3, 3]), np.ones((2, 1)))


def test_truncated_store_is_reported(tmp_path):
    model = _model("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    stored = model.blocks.on_disk(str(tmp_path / "s"))
    with open(tmp_path / "s" / "val.bin", "r+b") as f:
        f.truncate(16)
    with pytest.raises(OSError, match="shorter than expected"):
        PlsFactorizer(replace(stored))
