"""Input types: polars DataFrames are accepted wherever pandas ones are, with the same
answers; a path given as data names Parquet files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx

pl = pytest.importorskip("polars")


def test_glmm_laplace_and_pql_from_polars():
    cbpp = mixedfx.datasets.load("cbpp")
    # polars has no integer-labelled categoricals: factors travel as (categorical) strings
    cbpp_pl = pl.from_pandas(cbpp.astype({"herd": str, "period": str})).with_columns(
        pl.col("herd").cast(pl.Categorical), pl.col("period").cast(pl.Categorical))
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    for method in ("laplace", "pql"):
        a = mixedfx.glmm(formula, cbpp, family="binomial", method=method)
        b = mixedfx.glmm(formula, cbpp_pl, family="binomial", method=method)
        np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=1e-12)
        assert b.tidy().shape == a.tidy().shape


def test_residual_structures_predict_and_decomposition_from_polars():
    orth = mixedfx.datasets.load("Orthodont")
    formula = "distance ~ age + Sex + (1 | Subject)"
    a = mixedfx.lmm(formula, orth, correlation=mixedfx.AR1(), variance=mixedfx.VarIdent("Sex"))
    b = mixedfx.lmm(formula, pl.from_pandas(orth), correlation=mixedfx.AR1(),
                    variance=mixedfx.VarIdent("Sex"))
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)
    sleep = mixedfx.datasets.load("sleepstudy")
    fit = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_allclose(fit.predict(pl.from_pandas(sleep.iloc[:20])),
                               fit.predict(sleep.iloc[:20]), rtol=1e-12)
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["new", "new"]})
    np.testing.assert_allclose(fit.predict(pl.from_pandas(new), allow_new_levels=True),
                               fit.predict(new, allow_new_levels=True), rtol=1e-12)
    pd.testing.assert_frame_equal(
        mixedfx.anova_table("Reaction ~ Days + (1 | Subject)", pl.from_pandas(sleep)),
        mixedfx.anova_table("Reaction ~ Days + (1 | Subject)", sleep))


def test_polars_fit_saves_plots_and_tidies(tmp_path):
    pytest.importorskip("matplotlib")
    from mixedfx import plot

    sleep = pl.from_pandas(mixedfx.datasets.load("sleepstudy"))
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    loaded = mixedfx.load(res.save(tmp_path / "fit.mfx.json"))
    assert loaded.summary() == res.summary()
    assert len(plot.group_lines(res).axes) >= 1
    assert list(res.glance()["nobs"]) == [180]


def test_glmm_predictions_of_polars_new_data():
    from mixedfx.datasets import simulate

    data = simulate.binary_outcomes(seed=5)
    fit = mixedfx.glmm("passed ~ hours + (1 | school)", data, family="binomial")
    new = data.head(6)
    for kind in ("conditional", "fixed", "marginal"):
        np.testing.assert_allclose(
            fit.predict(pl.from_pandas(new), kind=kind, scale="response"),
            fit.predict(new, kind=kind, scale="response"), rtol=1e-12)


def test_csv_path_as_data_is_refused_with_a_clear_message(tmp_path):
    """A path given to lmm/glmm names Parquet files (read out of core); a CSV is refused by
    name, with how to pass it, instead of pyarrow's error."""
    pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    path = tmp_path / "cbpp.csv"
    mixedfx.datasets.load("cbpp").to_csv(path, index=False)
    with pytest.raises(mixedfx.DataError, match=r"cbpp\.csv' is not a Parquet file.*read_csv"):
        mixedfx.lmm("incidence ~ period + (1 | herd)", str(path))
    with pytest.raises(mixedfx.DataError, match=r"cbpp\.csv' is not a Parquet file"):
        mixedfx.glmm("incidence ~ period + (1 | herd)", path, family="poisson")
