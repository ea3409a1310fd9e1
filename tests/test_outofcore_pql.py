"""PQL out of core (MASS::glmmPQL's iterations on aggregated blocks): the in-memory fit's
estimates, containment df and iterations from Parquet, DuckDB relations and Dask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import DataError
from tests.conftest import relative_difference as _rel

duckdb = pytest.importorskip("duckdb")
dd = pytest.importorskip("dask.dataframe")

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
NESTED = "y ~ x + w + (1 | school/class)"  # x varies within classes, w within schools only
CROSSED = "y ~ x + (1 | school) + (1 | item)"


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    df = mixedfx.datasets.load("cbpp")
    return df.assign(period=df.period.astype(str), herd=df.herd.astype(str))


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n, schools, classes = 1200, 12, 4
    school = rng.integers(0, schools, n)
    cls = rng.integers(0, classes, n)
    w_school = rng.normal(size=schools)
    item = rng.integers(0, 9, n)
    x = rng.normal(size=n)
    eta = (0.3 + 0.4 * x + 0.3 * w_school[school] + 0.5 * rng.normal(size=schools)[school]
           + 0.3 * rng.normal(size=(schools, classes))[school, cls]
           + 0.2 * rng.normal(size=9)[item])
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "w": w_school[school],
                         "school": [f"s{k:02d}" for k in school], "class": cls,
                         "item": item.astype(str)})


def _parquet(frame: pd.DataFrame, tmp_path) -> str:
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 2)):
        frame.iloc[part].to_parquet(tmp_path / f"part-{k}.parquet", index=False)
    return str(tmp_path / "part-*.parquet")


def _agree(mem, ooc) -> None:
    assert ooc.iterations == mem.iterations and ooc.converged
    assert list(ooc.fixef.index) == list(mem.fixef.index)
    for name in ("fixef", "se", "theta"):
        assert _rel(getattr(mem, name), getattr(ooc, name)) < 1e-6, name
    assert abs(ooc.sigma / mem.sigma - 1) < 1e-6
    np.testing.assert_array_equal(ooc.df.to_numpy(), mem.df.to_numpy())
    assert _rel(mem.varcorr.vcov, ooc.varcorr.vcov) < 1e-6
    for g in mem.ranef:
        assert list(ooc.ranef[g].index) == list(mem.ranef[g].index)
        assert _rel(mem.ranef[g], ooc.ranef[g]) < 1e-5
        assert _rel(mem.ranef_sd[g], ooc.ranef_sd[g]) < 1e-5


@pytest.mark.parametrize("kind", ["parquet", "relation", "dask"])
def test_cbpp_binomial_agrees_with_memory(cbpp, kind, tmp_path):
    data = {"parquet": lambda: _parquet(cbpp, tmp_path),
            "relation": lambda: duckdb.from_df(cbpp),
            "dask": lambda: dd.from_pandas(cbpp, npartitions=3)}[kind]()
    mem = mixedfx.glmm(CBPP, cbpp, family="binomial", method="pql")
    ooc = mixedfx.glmm(CBPP, data, family="binomial", method="pql")
    _agree(mem, ooc)
    assert ooc.fitted is None and ooc.residuals is None
    assert "penalized quasi-likelihood" in ooc.summary()
    assert ooc.to_dict()["fitted"] is None
    with pytest.raises(DataError, match="out of core"):
        ooc.predict()


@pytest.mark.parametrize("formula", [NESTED, CROSSED])
def test_poisson_containment_df_and_estimates(counts, formula, tmp_path):
    """Nested school/class: df by stratum (x in the residual stratum, w at the school
    level), as nlme; crossed factors: no containment df (NaN), as in memory."""
    mem = mixedfx.glmm(formula, counts, family="poisson", method="pql")
    ooc = mixedfx.glmm(formula, _parquet(counts, tmp_path), family="poisson", method="pql")
    _agree(mem, ooc)
    if formula == NESTED:
        assert ooc.df["w"] < ooc.df["x"]
    else:
        assert ooc.df.isna().all()


def test_pql_control_checked(cbpp, tmp_path):
    with pytest.raises(ValueError, match="maxiter, tolerance, optimizer"):
        mixedfx.glmm(CBPP, _parquet(cbpp, tmp_path), family="binomial", method="pql",
                     control={"maxit": 3})
