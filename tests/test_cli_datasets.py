"""The command line and the bundled data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mixedfx import datasets
from mixedfx.cli import main


def test_datasets_listed_and_loadable():
    names = datasets.names()
    assert {"sleepstudy", "InstEval", "VerbAgg", "cbpp", "Ovary", "Orthodont"} <= set(names)
    for name in names:
        assert len(datasets.load(name)) > 0
    assert "lme4" in datasets.provenance()


def test_factor_levels_follow_r():
    assert list(datasets.load("Orthodont").Sex.cat.categories) == ["Male", "Female"]
    assert list(datasets.load("InstEval").service.cat.categories) == [0, 1]


def test_unknown_dataset_suggests():
    with pytest.raises(KeyError, match="Did you mean 'sleepstudy'"):
        datasets.load("sleepstudi")


def test_load_returns_fresh_copy():
    a = datasets.load("Dyestuff")
    a.loc[0, "Yield"] = -1
    assert datasets.load("Dyestuff").loc[0, "Yield"] != -1


def test_cli_fit_summary(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "Data: sleepstudy" in out


def test_cli_fit_json_ml(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--ml",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["reml"] is False and d["objective"] == pytest.approx(1751.9393444632, rel=1e-8)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_reads_files(tmp_path, capsys, suffix):
    df = datasets.load("Dyestuff")
    path = tmp_path / f"dye{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        pytest.importorskip("pyarrow")
        df.to_parquet(path)
    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["objective"] == pytest.approx(319.654276842258, rel=1e-8)


def test_cli_errors_exit_2(capsys):
    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"]) == 2
    assert "Did you mean 'Days'" in capsys.readouterr().err
    assert main(["fit", "y ~ 1 + (1 | g)", "--data", "no_such_file.csv"]) == 2
    assert "neither a file nor a bundled data set" in capsys.readouterr().err
    assert main(["fit", "Reaction ~ (Days | Subject", "--data", "sleepstudy"]) == 2
    assert "^" in capsys.readouterr().err


def test_cli_datasets(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "sleepstudy" in out and "180 rows" in out


def test_cli_weights_column(tmp_path, capsys):
    df = datasets.load("sleepstudy").assign(w=1.0)
    path = tmp_path / "s.csv"
    pd.DataFrame(df).to_csv(path, index=False)
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path),
                 "--weights", "w", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objective"] == pytest.approx(1743.628272,
                                                                              rel=1e-7)
