"""Shared fixtures: reference values from R (see tests/reference/README.md)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REFERENCE = Path(__file__).parent / "reference"


def load_reference(name: str) -> dict:
    """Expected values computed by R (lme4 1.1-31 etc.) by tests/reference/shared_refs.R."""
    with open(REFERENCE / f"{name}.json") as fh:
        return json.load(fh)


@pytest.fixture(autouse=True)
def _numba_quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="numba")
        yield


def relative_difference(a, b) -> float:
    """max |a - b| / max |a| over all entries (no entry near zero needs an absolute
    tolerance)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


def assert_estimates_agree(a, b, tol: float) -> None:
    """Fits ``a`` and ``b`` (LMM or GLMM results) agree to ``tol`` relative on fixef, se,
    vcov, theta, the varcorr table (same rows) and, per group, the conditional modes and
    their sds (same levels and columns)."""
    for attr in ("fixef", "se", "vcov", "theta"):
        assert relative_difference(getattr(a, attr), getattr(b, attr)) < tol, attr
    labels = ["group", "term1", "term2"]
    pd.testing.assert_frame_equal(a.varcorr[labels], b.varcorr[labels])
    assert relative_difference(a.varcorr.vcov, b.varcorr.vcov) < tol
    assert relative_difference(a.varcorr.sdcor, b.varcorr.sdcor) < tol
    for g in a.ranef:
        assert list(a.ranef[g].index) == list(b.ranef[g].index)
        assert list(a.ranef[g].columns) == list(b.ranef[g].columns)
        assert relative_difference(a.ranef[g], b.ranef[g]) < tol, g
        assert relative_difference(a.ranef_sd[g], b.ranef_sd[g]) < tol, g

