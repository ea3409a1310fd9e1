"""Out-of-core fits (issue 7): DuckDB over Parquet, DuckDB relations and Dask give the
in-memory fit's blocks and estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.errors import DataError
from mixedfx.outofcore import lmm_outofcore
from tests.conftest import assert_estimates_agree
from tests.conftest import relative_difference as _rel

duckdb = pytest.importorskip("duckdb")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

SCALAR = "y ~ x + f + (1 | g) + (1 | h)"
VECTOR = "y ~ x * f + (1 + x | g) + (1 | h)"
NESTED = "y ~ x + (1 | a/b)"
# the Newton polish pins the optimum down to the objective's rounding noise, so whole fits
# agree to 1e-8 (without it, only to ~1e-6: NEWUOA stops anywhere within its tolerance)
CONTROL = {"start": "identity", "xtol_abs": 1e-10, "polish": True}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 1500
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 15, n)
    df = pd.DataFrame({"rid": np.arange(n), "g": g, "h": [f"item{k:02d}" for k in h],
                       "x": rng.normal(size=n), "f": rng.choice(["lo", "mid", "hi"], n),
                       "a": rng.choice(["A", "B", "C", "D"], n), "b": rng.integers(1, 4, n)})
    df["y"] = (1 + 0.5 * df.x + (df.f == "hi") + rng.normal(size=40)[g]
               + 0.4 * rng.normal(size=40)[g] * df.x + 0.7 * rng.normal(size=15)[h]
               + rng.normal(size=n))
    ai = df.a.map({"A": 0, "B": 1, "C": 2, "D": 3}).to_numpy()
    df["y"] += 0.8 * rng.normal(size=4)[ai] + 0.6 * rng.normal(size=12)[ai * 3 + df.b - 1]
    df.loc[[3, 700], "x"] = np.nan  # dropped rows, as in memory
    return df


@pytest.fixture(scope="module")
def parquet_glob(frame, tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ooc")
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(d / f"part-{k}.parquet", index=False)
    return str(d / "part-*.parquet")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _inputs(kind, frame, parquet_glob, client):
    if kind == "parquet":
        return parquet_glob
    if kind == "relation":
        return duckdb.from_df(frame)
    return dd.from_pandas(frame, npartitions=3)


KINDS = ["parquet", "relation", "dask", "parquet-disk", "dask-disk"]


@pytest.fixture(scope="module")
def fits(frame, parquet_glob, client):
    """Every formula fitted in memory and from every input; ``-disk`` kinds keep the first
    term's blocks on disk, streamed by DuckDB (Parquet) or moved there after aggregation
    (Dask), read back in chunks of 37 entries and written in batches of 50 rows."""
    out = {}
    for formula in (SCALAR, VECTOR, NESTED):
        out[formula, "memory"] = mixedfx.lmm(formula, frame, control=CONTROL)
        for kind in KINDS:
            data = _inputs(kind.removesuffix("-disk"), frame, parquet_glob, client)
            if kind.endswith("-disk"):
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr("mixedfx.linalg.levelstore.CHUNK_ENTRIES", 37)
                    mp.setattr("mixedfx.outofcore.sqlagg.STREAM_ROWS", 50)
                    out[formula, kind] = lmm_outofcore(formula, data, control=CONTROL,
                                                       blocks_on_disk=True)
                assert out[formula, kind].model.blocks.store.chunk_entries == 37
            else:
                out[formula, kind] = mixedfx.lmm(formula, data, control=CONTROL)
    return out


def _first_term(blocks):
    """A11, ptr, idx and val of the first term, read from the store if there is one."""
    chunks = list(blocks.level_chunks())
    off = np.cumsum([0] + [c.ptr[-1] for c in chunks])
    ptr = np.concatenate([[0]] + [c.ptr[1:] + off[i] for i, c in enumerate(chunks)])
    return (np.concatenate([c.A11 for c in chunks]), ptr,
            np.concatenate([c.idx for c in chunks]), np.concatenate([c.val for c in chunks]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("formula", [SCALAR, VECTOR, NESTED])
def test_blocks_equal_in_memory(fits, formula, kind):
    mem, ooc = fits[formula, "memory"].model, fits[formula, kind].model
    a, b = mem.blocks, ooc.blocks
    assert (a.n, a.dims, a.nlevels, a.p, a.offsets) == (b.n, b.dims, b.nlevels, b.p, b.offsets)
    assert (b.store is not None) == kind.endswith("-disk")
    A11a, ptra, idxa, vala = _first_term(a)
    A11b, ptrb, idxb, valb = _first_term(b)
    np.testing.assert_array_equal(ptra, b.A21_ptr)
    np.testing.assert_array_equal(ptra, ptrb)
    np.testing.assert_array_equal(idxa, idxb)
    assert _rel(A11a, A11b) < 1e-12
    assert _rel(vala, valb) < 1e-12
    assert _rel(a.A22, b.A22) < 1e-12
    assert _rel(mem.beta_shift, ooc.beta_shift) < 1e-12


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("formula", [SCALAR, VECTOR, NESTED])
def test_every_estimate_at_the_same_theta(fits, formula, kind):
    """With blocks equal, every estimate at a given theta agrees to 1e-8 (the optimizer's
    stopping point itself is only determined to ~1e-7 by a 1e-15-relative objective; the
    polish fixes it, see test_fits_agree_with_in_memory)."""
    mem, ooc = fits[formula, "memory"].model, fits[formula, kind].model
    theta = fits[formula, kind].theta
    assert abs(mem.objective(theta) / ooc.objective(theta) - 1) < 1e-12
    sa, sb = mem.solve(theta), ooc.solve(theta)
    assert _rel(sa.beta, sb.beta) < 1e-8
    assert abs(sa.pwrss / sb.pwrss - 1) < 1e-8
    assert _rel(sa.RX_inv_cov, sb.RX_inv_cov) < 1e-8
    for x, y in zip(sa.b, sb.b, strict=True):
        assert _rel(x, y) < 1e-8
    for x, y in zip(sa.cond_cov, sb.cond_cov, strict=True):
        assert _rel(x, y) < 1e-8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("formula", [SCALAR, VECTOR, NESTED])
def test_fits_agree_with_in_memory(fits, formula, kind):
    """Polished fits agree to 1e-8 relative on every estimate (measured: <= 1.1e-10, theta of
    the nested model, most ~1e-11; the objective to 1e-15). Unpolished: up to 1.9e-7."""
    a, b = fits[formula, "memory"], fits[formula, kind]
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.nobs == b.nobs and a.n_dropped == b.n_dropped == 2
    assert a.ngroups == b.ngroups
    assert a.optsum.polish_status == b.optsum.polish_status == "converged"
    for attr in ("objective", "loglik", "deviance", "aic", "bic", "sigma"):
        assert abs(getattr(a, attr) / getattr(b, attr) - 1) < 1e-8, attr
    assert abs(a.objective / b.objective - 1) < 1e-12
    assert_estimates_agree(a, b, 1e-8)
    assert "not held" in b.summary()


@pytest.mark.parametrize("kind", ["parquet", "dask"])
def test_write_fitted(fits, frame, kind, tmp_path):
    a, b = fits[VECTOR, "memory"], fits[VECTOR, kind]
    path = b.write_fitted(tmp_path / "fitted.parquet")
    out = pd.read_parquet(path).sort_values("rid")
    kept = frame.dropna(subset=["x"]).sort_values("rid")
    assert list(out.rid) == list(kept.rid)
    mem = pd.Series(a.fitted, index=frame.dropna(subset=["x"]).rid).loc[out.rid]
    assert _rel(mem.to_numpy(), out.fitted.to_numpy()) < 1e-8  # polished fits (CONTROL)
    np.testing.assert_allclose(out.residual, out.y - out.fitted, rtol=0, atol=1e-12)


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(DataError, match="no Parquet file matches"):
        mixedfx.lmm(SCALAR, str(tmp_path / "nothing-*.parquet"))


def test_column_missing_from_some_files(frame, tmp_path):
    frame.iloc[:700].to_parquet(tmp_path / "p1.parquet")
    frame.iloc[700:].drop(columns="h").to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(DataError, match=r"'h' missing from p2\.parquet"):
        mixedfx.lmm(SCALAR, str(tmp_path))


def test_mixed_types_across_files(frame, tmp_path):
    frame.iloc[:700].to_parquet(tmp_path / "p1.parquet")
    other = frame.iloc[700:].copy()
    other["g"] = other["g"].astype(str)
    other.to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(DataError, match=r"'g' is int64 in p1\.parquet, string in p2\.parquet"):
        mixedfx.lmm(SCALAR, str(tmp_path / "*.parquet"))


def test_unsupported_terms_named(parquet_glob):
    with pytest.raises(DataError, match=r"term 'log\(x\)'"):
        mixedfx.lmm("y ~ log(x) + (1 | g)", parquet_glob)
    with pytest.raises(DataError, match="categorical 'f' in random term"):
        mixedfx.lmm("y ~ x + (f | g)", parquet_glob)
    with pytest.raises(DataError, match=r"'nope', 'g' not found in the data"):
        mixedfx.lmm("y ~ nope + (1 | g)", duckdb.from_df(pd.DataFrame({"y": [1.0]})))


def test_docs_example_runs(tmp_path, monkeypatch, client):
    """The python block of docs/outofcore.md runs (sleepstudy through Parquet, DuckDB, Dask)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "outofcore.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, "outofcore.md", "exec"), namespace)  # noqa: S102
    res, mem = namespace["res"], mixedfx.lmm("Reaction ~ Days + (Days | Subject)",
                                             mixedfx.datasets.load("sleepstudy"))
    assert _rel(res.fixef, mem.fixef) < 1e-6
    assert _rel(namespace["res_dask"].fixef, mem.fixef) < 1e-6
    assert namespace["res_disk"].model.blocks.store is not None
    assert _rel(namespace["res_disk"].fixef, mem.fixef) < 1e-6
    cbpp = mixedfx.datasets.load("cbpp")
    pql = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial", method="pql")
    assert _rel(namespace["res_pql"].fixef, pql.fixef) < 1e-6


def test_separate_terms_of_one_factor(frame, parquet_glob):
    a = mixedfx.lmm("y ~ x + (x || g)", frame, control=CONTROL)
    b = mixedfx.lmm("y ~ x + (x || g)", parquet_glob, control=CONTROL)
    assert list(a.varcorr.group) == list(b.varcorr.group)
    assert _rel(a.varcorr.vcov, b.varcorr.vcov) < 1e-8


@pytest.mark.parametrize("formula", [VECTOR, NESTED])
def test_compact_labels_of_many_levels(fits, frame, parquet_glob, formula, monkeypatch,
                                       tmp_path):
    """From COMPACT_LEVELS levels on, labels are an Arrow string index with the in-memory
    labels (integers, strings, interactions "A:1"), and write_fitted still joins them."""
    monkeypatch.setattr("mixedfx.outofcore.labels.COMPACT_LEVELS", 0)
    mem = fits[formula, "memory"]
    res = mixedfx.lmm(formula, parquet_glob, control=CONTROL)
    for g in mem.ranef:
        assert isinstance(res.ranef[g].index.dtype, pd.StringDtype)
        assert list(res.ranef[g].index) == list(mem.ranef[g].index)
        assert res.ranef[g].index.name == g
    out = pd.read_parquet(res.write_fitted(tmp_path / "fitted.parquet"))
    ref = fits[formula, "parquet"]
    want = pd.read_parquet(ref.write_fitted(tmp_path / "ref.parquet"))
    np.testing.assert_allclose(out.sort_values("rid").fitted, want.sort_values("rid").fitted,
                               rtol=1e-5, atol=1e-7)


def test_duckdb_out_of_memory_says_what_to_do(parquet_glob):
    with pytest.raises(MemoryError, match="memory_limit="):
        lmm_outofcore(SCALAR, parquet_glob, memory_limit="64KB", blocks_on_disk=True)


def test_failed_aggregation_leaves_no_store(parquet_glob, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the store and DuckDB's files go
    monkeypatch.setattr("tempfile.tempdir", None)

    def fail(*args):
        assert list(tmp_path.glob("mixedfx-blocks-*"))  # the store was being written
        raise RuntimeError("interrupted")

    monkeypatch.setattr("mixedfx.outofcore.aggblocks._DenseMerger.add", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        lmm_outofcore(SCALAR, parquet_glob, blocks_on_disk=True)
    assert not list(tmp_path.glob("mixedfx-blocks-*"))


def test_duckdb_idles_between_queries(fits, frame, tmp_path):
    """After aggregating, DuckDB is left with a small memory limit (its buffers handed back)
    and write_fitted gets the full limit for its query, then idles DuckDB again."""
    res = fits[VECTOR, "parquet-disk"]
    source = res.model.writer[0]

    def limit() -> str:
        return source.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]

    idle = limit()
    res.write_fitted(tmp_path / "f.parquet")
    assert limit() == idle
    source.active()
    assert limit() != idle
    source.idle()


@pytest.fixture(scope="module")
def weighted(frame, tmp_path_factory):
    """The test frame plus prior weights (one 0, one missing) and an offset (one missing),
    in memory and as a Parquet glob."""
    rng = np.random.default_rng(12)
    df = frame.copy()
    df["w"] = rng.uniform(0.2, 3.0, len(df))
    df.loc[10, "w"] = 0.0  # kept, as in memory: it counts in n, not in sum(log w)
    df.loc[20, "w"] = np.nan
    df["o"] = 0.5 * rng.normal(size=len(df))
    df.loc[30, "o"] = np.nan
    d = tmp_path_factory.mktemp("ooc-weighted")
    for k, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[part].to_parquet(d / f"part-{k}.parquet", index=False)
    return df, str(d / "part-*.parquet")


@pytest.fixture(scope="module")
def weighted_fits(weighted, client):
    """VECTOR with weights="w" and offset="o", in memory and from every input."""
    df, glob = weighted
    out = {"memory": mixedfx.lmm(VECTOR, df, weights="w", offset="o", control=CONTROL)}
    for kind in KINDS:
        data = _inputs(kind.removesuffix("-disk"), df, glob, client)
        out[kind] = lmm_outofcore(VECTOR, data, weights="w", offset="o", control=CONTROL,
                                  blocks_on_disk=kind.endswith("-disk"))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_blocks_equal_in_memory(weighted_fits, kind):
    a, b = weighted_fits["memory"].model, weighted_fits[kind].model
    assert a.blocks.sum_log_weights != 0
    assert abs(a.blocks.sum_log_weights / b.blocks.sum_log_weights - 1) < 1e-12
    assert (a.blocks.n, a.blocks.offsets) == (b.blocks.n, b.blocks.offsets)
    A11a, ptra, idxa, vala = _first_term(a.blocks)
    A11b, ptrb, idxb, valb = _first_term(b.blocks)
    np.testing.assert_array_equal(ptra, ptrb)
    np.testing.assert_array_equal(idxa, idxb)
    assert _rel(A11a, A11b) < 1e-12
    assert _rel(vala, valb) < 1e-12
    assert _rel(a.blocks.A22, b.blocks.A22) < 1e-12
    assert _rel(a.beta_shift, b.beta_shift) < 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_fits_agree_with_in_memory(weighted_fits, kind):
    a, b = weighted_fits["memory"], weighted_fits[kind]
    assert a.nobs == b.nobs and a.n_dropped == b.n_dropped == 4  # x twice, w, o
    assert a.weights_used and b.weights_used
    assert a.optsum.polish_status == b.optsum.polish_status == "converged"
    for attr in ("objective", "loglik", "deviance", "aic", "bic", "sigma"):
        assert abs(getattr(a, attr) / getattr(b, attr) - 1) < 1e-8, attr
    for attr in ("fixef", "se", "vcov", "theta"):
        assert _rel(getattr(a, attr), getattr(b, attr)) < 1e-8, attr
    assert _rel(a.varcorr.vcov, b.varcorr.vcov) < 1e-8
    for g in a.ranef:
        assert _rel(a.ranef[g], b.ranef[g]) < 1e-8, g
        assert _rel(a.ranef_sd[g], b.ranef_sd[g]) < 1e-8, g
    assert "Weights: prior weights" in b.summary()


def test_weights_and_offset_change_the_fit(weighted, weighted_fits):
    """Both the weights and the offset change the fit (the tests above would pass if either
    were ignored everywhere)."""
    df = weighted[0].dropna(subset=["w", "o"])
    ooc = weighted_fits["parquet"]
    for kwargs in ({"weights": "w"}, {"offset": "o"}):
        other = mixedfx.lmm(VECTOR, df, control=CONTROL, **kwargs)
        assert _rel(other.fixef, ooc.fixef) > 1e-3, kwargs


@pytest.mark.parametrize("kind", ["parquet", "dask"])
def test_weighted_write_fitted(weighted, weighted_fits, kind, tmp_path):
    """Fitted values include the offset, as res.fitted in memory; residual = y - fitted."""
    df = weighted[0]
    a, b = weighted_fits["memory"], weighted_fits[kind]
    out = pd.read_parquet(b.write_fitted(tmp_path / "fitted.parquet")).sort_values("rid")
    kept = df.dropna(subset=["x", "w", "o"])
    assert sorted(out.rid) == sorted(kept.rid)
    mem = pd.Series(a.fitted, index=kept.rid).loc[out.rid]
    assert _rel(mem.to_numpy(), out.fitted.to_numpy()) < 1e-8
    np.testing.assert_allclose(out.residual, out.y - out.fitted, rtol=0, atol=1e-12)


def test_weights_and_offset_bad_input(weighted, client):
    df, glob = weighted
    with pytest.raises(DataError, match="weights= must be the name of a column.*put the "
                                        "values in a column"):
        mixedfx.lmm(SCALAR, glob, weights=df.w.to_numpy())
    with pytest.raises(DataError, match="offset= must be the name of a column"):
        mixedfx.lmm(SCALAR, duckdb.from_df(df), offset=list(df.o))
    with pytest.raises(DataError, match="'nope' missing from part-0.parquet"):
        mixedfx.lmm(SCALAR, glob, weights="nope")
    with pytest.raises(DataError, match=r"'nope' not found in the data"):
        mixedfx.lmm(SCALAR, dd.from_pandas(df, npartitions=2), offset="nope")
    with pytest.raises(DataError, match="weights must be numeric.*'f'"):
        mixedfx.lmm(SCALAR, duckdb.from_df(df), weights="f")
    neg = df.assign(w=df.w.where(df.rid != 50, -1.0))
    with pytest.raises(DataError, match="weights must be finite and non-negative"):
        mixedfx.lmm(SCALAR, neg, weights="w")  # in memory: the same message
    for data in (duckdb.from_df(neg), dd.from_pandas(neg, npartitions=2)):
        with pytest.raises(DataError, match="weights must be finite and non-negative: column "
                                            "'w' has 1 negative"):
            mixedfx.lmm(SCALAR, data, weights="w")
