"""Out-of-core GLMM fits (issue 7): each PIRLS step a pass over DuckDB batches (Parquet, a
DuckDB relation) or Dask partitions (a LocalCluster) gives the in-memory engine's blocks,
modes and Laplace deviance, hence the same fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import DataError
from tests.conftest import assert_estimates_agree
from tests.conftest import relative_difference as _rel

duckdb = pytest.importorskip("duckdb")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from mixedfx.families import get_family  # noqa: E402
from mixedfx.glmm.model import GlmmModel  # noqa: E402
from mixedfx.glmm.pirls import PirlsEngine  # noqa: E402
from mixedfx.outofcore.glmm_dispatch import build_rows_model  # noqa: E402
from mixedfx.outofcore.glmm_engine import OutOfCorePirls  # noqa: E402

BERN = "y ~ x + f + (1 | g) + (1 | h)"
SLOPE = "y ~ x + (1 + x | g)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
POIS = "count ~ x + (1 | g)"
KINDS = ["parquet", "relation", "dask"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 1200
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    f = rng.choice(["lo", "mid", "hi"], n)
    eta = (-0.3 + 0.8 * x + 0.5 * (f == "hi") + rng.normal(size=40)[g]
           + 0.4 * rng.normal(size=40)[g] * x + 0.6 * rng.normal(size=12)[h])
    df = pd.DataFrame({"g": g, "h": [f"item{k:02d}" for k in h], "x": x, "f": f,
                       "y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
                       "count": rng.poisson(np.exp(0.5 + 0.3 * x + 0.5 * rng.normal(size=40)[g]))
                       .astype(float)})
    df.loc[[7, 500], "x"] = np.nan  # dropped, as in memory
    return df


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    df = mixedfx.datasets.load("cbpp").copy()
    df["herd"] = df["herd"].astype(str).str.zfill(2)  # sorts as lme4's factor levels
    df["period"] = df["period"].astype(str)
    return df


def _write(frame: pd.DataFrame, d, parts: int = 3) -> str:
    for k, idx in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[idx].to_parquet(d / f"part-{k}.parquet", index=False)
    return str(d / "part-*.parquet")


@pytest.fixture(scope="module")
def globs(frame, cbpp, tmp_path_factory) -> dict:
    return {"frame": _write(frame, tmp_path_factory.mktemp("oocg")),
            "cbpp": _write(cbpp, tmp_path_factory.mktemp("oocc"))}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _data(kind: str, name: str, frames: dict, globs: dict):
    if kind == "parquet":
        return globs[name]
    if kind == "relation":
        return duckdb.from_df(frames[name])
    return dd.from_pandas(frames[name], npartitions=2)


CASES = [(BERN, "frame", "binomial"), (SLOPE, "frame", "binomial"),
         (CBPP, "cbpp", "binomial"), (POIS, "frame", "poisson")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("formula", "name", "family"), CASES)
@pytest.mark.parametrize("free_beta", [False, True])
def test_every_quantity_at_a_common_point(frame, cbpp, globs, client, kind, formula, name,
                                          family, free_beta):
    """At one (theta, beta): modes, beta (nAGQ = 0), ldL2, penalized deviance, Laplace
    deviance and the weighted blocks at the modes agree with the in-memory engine."""
    frames = {"frame": frame, "cbpp": cbpp}
    fam = get_family(family)
    mem = GlmmModel.build(formula, frames[name], fam)
    ooc, pairs = build_rows_model(formula, _data(kind, name, frames, globs), family)
    assert ooc.fixed_names == mem.fixed_names
    assert [t.levels for t in ooc.terms] == [t.levels for t in mem.terms]
    assert ooc.nobs == len(mem.y)
    rng = np.random.default_rng(1)
    theta = mem.theta_initial * 0.7 + 0.05 * rng.random(len(mem.theta_initial))
    beta = np.linspace(-0.4, 0.6, len(mem.fixed_names))
    a, b = PirlsEngine(mem, free_beta), OutOfCorePirls(ooc, free_beta, pairs)
    te = mem.tmap.to_engine(theta)
    sa, sb = a.run(te, beta), b.run(te, beta)
    for x, y in zip(sa.u, sb.u, strict=True):
        assert _rel(x, y) < 1e-8
    assert _rel(sa.beta, sb.beta) < 1e-8
    assert abs(sa.ldL2 / sb.ldL2 - 1) < 1e-8
    assert abs(sa.pdev / sb.pdev - 1) < 1e-10
    assert abs(a.laplace(sa) / b.laplace(sb) - 1) < 1e-10
    ba, bb = a.cross.blocks, b.blocks
    assert (ba.dims, ba.nlevels, ba.p, ba.offsets) == (bb.dims, bb.nlevels, bb.p, bb.offsets)
    np.testing.assert_array_equal(ba.A21_idx, bb.A21_idx)
    for attr in ("A11", "A21_val", "A22"):
        assert _rel(getattr(ba, attr), getattr(bb, attr)) < 1e-8, attr


POLISHED = {"polish": True}  # the crossed binomial model: Newton polish, see below


@pytest.fixture(scope="module")
def fits(frame, cbpp, globs, client):
    """Every case in memory and out of core; the crossed binomial model (BERN) polished."""
    frames = {"frame": frame, "cbpp": cbpp}
    out = {}
    for formula, name, family in CASES:
        control = POLISHED if formula == BERN else None
        out[formula, "memory"] = mixedfx.glmm(formula, frames[name], family=family,
                                              control=control)
        kinds = {BERN: ["parquet", "dask"], CBPP: KINDS}.get(formula, ["parquet"])
        for kind in kinds:
            out[formula, kind] = mixedfx.glmm(formula, _data(kind, name, frames, globs),
                                              family=family, control=control)
    return out


FULL = [(CBPP, k) for k in KINDS] + [(SLOPE, "parquet"), (POIS, "parquet")]


@pytest.mark.parametrize("kind", ["parquet", "dask"])
def test_polished_fits_agree_to_1e8(fits, kind):
    """With control={"polish": True}, in-memory, Parquet and Dask fits of a crossed binomial
    GLMM agree to 1e-8 relative on every estimate (measured <= 1e-9: vcov; theta and beta
    ~3e-10). Relative means max |a - b| / max |a| over each estimate's entries, so
    no entry near zero needs an absolute tolerance. Without the polish: theta and beta ~1e-8,
    standard errors ~1e-5 (forward-difference Hessian noise), see the test below."""
    a, b = fits[BERN, "memory"], fits[BERN, kind]
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.nobs == b.nobs and a.n_dropped == b.n_dropped and a.ngroups == b.ngroups
    assert a.optsum.polish_steps > 0 and b.optsum.polish_status == a.optsum.polish_status
    assert a.vcov_method == b.vcov_method == "hessian"
    for attr in ("deviance", "loglik", "aic", "bic", "conditional_deviance"):
        assert abs(getattr(a, attr) / getattr(b, attr) - 1) < 1e-8, attr
    assert abs(a.deviance / b.deviance - 1) < 1e-12
    assert_estimates_agree(a, b, 1e-8)
    for g in a.ranef:
        assert _rel(a.ranef_cov[g], b.ranef_cov[g]) < 1e-8, g


def test_polish_moves_little(fits, frame):
    """The polish is a small correction: the unpolished fit agrees to BOBYQA's tolerance, and
    the polished deviance is not higher."""
    a, plain = fits[BERN, "memory"], mixedfx.glmm(BERN, frame)
    assert plain.optsum.polish_status is None
    assert a.deviance <= plain.deviance + 1e-12 * plain.deviance
    assert np.max(np.abs(a.fixef - plain.fixef)) < 1e-4
    assert _rel(a.se, plain.se) < 1e-4  # central Hessian at 5e-2 vs forward at 1e-4


@pytest.mark.parametrize(("formula", "kind"), FULL)
def test_fits_agree_with_in_memory(fits, formula, kind):
    """The same optimizer path on the same deviance, up to rounding: the deviance agrees to
    1e-10 relative; theta and beta to 1e-6 (BOBYQA stops on a 1e-4 step: 1e-15 noise in the
    deviance moves its last point by far less), standard errors (finite-difference Hessian
    at step 1e-4, which divides that noise by 1e-8) to 1e-4."""
    a, b = fits[formula, "memory"], fits[formula, kind]
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.nobs == b.nobs and a.n_dropped == b.n_dropped
    assert a.ngroups == b.ngroups
    assert abs(a.deviance / b.deviance - 1) < 1e-10
    assert np.max(np.abs(a.fixef - b.fixef)) < 1e-6
    assert np.max(np.abs(a.theta - b.theta)) < 1e-6
    assert _rel(a.se, b.se) < 1e-4
    assert a.vcov_method == b.vcov_method
    assert abs(a.conditional_deviance / b.conditional_deviance - 1) < 1e-8
    for g in a.ranef:
        assert list(a.ranef[g].index) == list(b.ranef[g].index)
        assert np.max(np.abs(a.ranef[g].to_numpy() - b.ranef[g].to_numpy())) < 1e-5
        assert _rel(a.ranef_sd[g], b.ranef_sd[g]) < 1e-5
    assert b.fitted is None and b.residuals is None
    assert "not held" in b.summary()


def test_cbpp_matches_lme4(fits):
    from tests.conftest import load_reference

    ref = load_reference("cbpp_laplace")
    b = fits[CBPP, "parquet"]
    np.testing.assert_allclose(b.fixef.to_numpy(), list(ref["fixef"].values()), rtol=0,
                               atol=1e-3)  # lme4's own optimizer tolerance
    assert abs(b.loglik - float(np.atleast_1d(ref["loglik"])[0])) < 1e-3


@pytest.mark.parametrize("kind", ["parquet", "relation"])
def test_nagq0_agrees(frame, globs, client, kind):
    a = mixedfx.glmm(BERN, frame, n_agq=0)
    b = mixedfx.glmm(BERN, _data(kind, "frame", {"frame": frame}, globs), n_agq=0)
    assert b.n_agq == 0 and b.optsum_init is None
    assert abs(a.deviance / b.deviance - 1) < 1e-10
    assert np.max(np.abs(a.fixef - b.fixef)) < 1e-6
    assert _rel(a.se, b.se) < 1e-6


def test_small_chunks_same_fit(frame, globs):
    """Batches of 100 rows: the same sums, hence the same fit."""
    from mixedfx.outofcore.glmm_dispatch import glmm_outofcore

    a = mixedfx.glmm(BERN, globs["frame"], n_agq=0)
    timings: dict = {}
    b = glmm_outofcore(BERN, globs["frame"], "binomial", n_agq=0, chunk_rows=100,
                       timings=timings)
    assert abs(a.deviance / b.deviance - 1) < 1e-10
    assert np.max(np.abs(a.fixef - b.fixef)) < 1e-6
    assert timings["passes"] > 0 and timings["fit_s"] > 0


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(DataError, match="no Parquet file matches"):
        mixedfx.glmm(BERN, str(tmp_path / "nothing-*.parquet"))


def test_column_missing_from_some_files(frame, tmp_path):
    frame.iloc[:600].to_parquet(tmp_path / "p1.parquet")
    frame.iloc[600:].drop(columns="h").to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(DataError, match=r"'h' missing from p2\.parquet"):
        mixedfx.glmm(BERN, str(tmp_path))


def test_mixed_types_across_files(frame, tmp_path):
    frame.iloc[:600].to_parquet(tmp_path / "p1.parquet")
    other = frame.iloc[600:].copy()
    other["g"] = other["g"].astype(str)
    other.to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(DataError, match=r"'g' is int64 in p1\.parquet, string in p2\.parquet"):
        mixedfx.glmm(BERN, str(tmp_path / "*.parquet"))


def test_unsupported_out_of_core(frame, globs):
    with pytest.raises(DataError, match="method='agq' is not supported out of core; use "
                                        "method='laplace'.*or method='pql'"):
        mixedfx.glmm(BERN, globs["frame"], method="agq", n_agq=3)
    with pytest.raises(DataError, match="Gamma family is not supported out of core"):
        mixedfx.glmm(POIS, globs["frame"], family="Gamma")
    with pytest.raises(DataError, match="'nope' not found in the data"):
        mixedfx.glmm("y ~ nope + (1 | g)", duckdb.from_df(frame))
    with pytest.raises(DataError, match="weights= must name a column"):
        mixedfx.glmm(BERN, globs["frame"], weights=np.ones(len(frame)))
    with pytest.raises(DataError, match=r"column 'f' must be numeric"):
        mixedfx.glmm("f ~ x + (1 | g)", globs["frame"])
    with pytest.raises(DataError, match="binomial"):  # counts are not 0/1 proportions
        mixedfx.glmm("count ~ x + (1 | g)", globs["frame"], family="binomial")


def test_proportions_with_weights_column(cbpp, tmp_path):
    """Proportions with the trials as a weights= column: the cbind fit, out of core too."""
    df = cbpp.assign(prop=cbpp.incidence / cbpp["size"])
    df.to_parquet(tmp_path / "cbpp.parquet", index=False)
    formula = "prop ~ period + (1 | herd)"
    a = mixedfx.glmm(formula, df, weights="size")
    b = mixedfx.glmm(formula, str(tmp_path / "cbpp.parquet"), weights="size")
    c = mixedfx.glmm(CBPP, cbpp)
    assert abs(a.deviance / b.deviance - 1) < 1e-10
    assert abs(c.deviance / b.deviance - 1) < 1e-8
    assert np.max(np.abs(a.fixef - b.fixef)) < 1e-6
