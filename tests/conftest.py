"""Shared fixtures: reference values from R (see tests/reference/README.md)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

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
