"""Every option of `mixedfx fit`, and bad input: exit codes and messages."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import mixedfx
from mixedfx.cli import main, parse_structure


def test_correlation_and_variance_options(capsys):
    code = main(["fit", "distance ~ age + Sex + (1 | Subject)", "--data", "Orthodont",
                 "--correlation", "AR1", "--variance", "VarIdent(Sex)", "--json", "--quiet"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    orthodont = mixedfx.datasets.load("Orthodont")
    ref = mixedfx.lmm("distance ~ age + Sex + (1 | Subject)", orthodont,
                      correlation=mixedfx.AR1(), variance=mixedfx.VarIdent("Sex"))
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-12)


def test_parse_structure_spellings():
    assert parse_structure("AR1(group=Mare)", "--correlation") == mixedfx.AR1(group="Mare")
    assert parse_structure("CAR1(time=Time, group='Subject')", "--correlation") == \
        mixedfx.CAR1(group="Subject", time="Time")
    assert parse_structure("VarIdent(Sex)", "--variance") == mixedfx.VarIdent("Sex")
    assert parse_structure("VarPower", "--variance") == mixedfx.VarPower()
    with pytest.raises(mixedfx.MixedFXError, match="use one of AR1, CAR1, CompSymm"):
        parse_structure("VarIdent(Sex)", "--correlation")
    with pytest.raises(mixedfx.MixedFXError, match="has no argument 'lag'"):
        parse_structure("AR1(lag=2)", "--correlation")
    with pytest.raises(mixedfx.MixedFXError, match="not understood"):
        parse_structure("__import__('os')", "--correlation")


def test_plot_and_save(tmp_path, capsys):
    out, saved = tmp_path / "cat.png", tmp_path / "fit.mfx.json"
    code = main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy",
                 "--plot", "caterpillar", "--out", str(out), "--save", str(saved)])
    assert code == 0
    assert out.stat().st_size > 1000
    err = capsys.readouterr().err
    assert "wrote" in err and "saved" in err
    loaded = mixedfx.load(saved)
    assert loaded.formula == "Reaction ~ Days + (Days | Subject)"


def test_ml_weights_offset_and_parquet(tmp_path, capsys):
    sleep = mixedfx.datasets.load("sleepstudy").assign(w=1.0, o=0.5)
    path = tmp_path / "sleep.parquet"
    sleep.to_parquet(path)
    code = main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(path), "--ml",
                 "--weights", "w", "--offset", "o", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, reml=False, offset="o")
    assert out["reml"] is False
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-10)


@pytest.mark.parametrize(("argv", "message"), [
    (["fit", "y ~ x + (1 | g)", "--data", "missing.csv"], "neither a file nor a bundled"),
    (["fit", "Reaction ~ Days + (1 | Subject", "--data", "sleepstudy"], "unclosed '('"),
    (["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "Did you mean 'Days'"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--correlation",
      "AR2"], "not understood"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_unknown_option_and_choice_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--plot",
              "pie"])
    assert exc.value.code == 2
    assert "invalid choice: 'pie'" in capsys.readouterr().err


def test_glmm_options(capsys):
    code = main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data",
                 "cbpp", "--family", "binomial", "--link", "logit", "--method", "agq",
                 "--n-agq", "5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       mixedfx.datasets.load("cbpp"), family="binomial", method="agq",
                       n_agq=5)
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-10)


def test_ddf_option(capsys):
    code = main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy",
                 "--ddf", "kenward-roger", "--json"])
    assert code == 0
    table = json.loads(capsys.readouterr().out)["coef_table"]
    assert table["ddf"] == "kenward-roger" and table["terms"] == ["(Intercept)", "Days"]
    assert table["df"] == pytest.approx([17.0, 17.0], rel=1e-6)


@pytest.mark.parametrize(("argv", "message"), [
    (["--family", "gaussianx"], "unknown family 'gaussianx'"),
    (["--method", "agq"], "apply to GLMMs"),
    (["--family", "poisson", "--correlation", "AR1"], "apply to linear mixed models"),
])
def test_glmm_bad_options(argv, message, capsys):
    base = ["fit", "incidence ~ period + (1 | herd)", "--data", "cbpp"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


SLEEP_RI = ["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy"]


def test_confint_wald_and_profile_match_the_api(capsys):
    sleep = mixedfx.datasets.load("sleepstudy")
    ref = mixedfx.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    for method in ("wald", "profile"):
        assert main(SLEEP_RI + ["--confint", method, "--json"]) == 0
        captured = capsys.readouterr()
        ci = json.loads(captured.out)["confint"]
        expected = ref.confint(method=method)
        assert ci["method"] == method and ci["names"] == [str(i) for i in expected.index]
        got = [np.nan if v is None else v for v in ci["lower"]]
        np.testing.assert_allclose(got, expected.lower.to_numpy(float), rtol=1e-10)
        if method == "profile":
            assert "computing profile intervals" in captured.err


def test_confint_bootstrap_nsim_seed_and_quiet(capsys):
    argv = SLEEP_RI + ["--confint", "bootstrap", "--nsim", "12", "--seed", "3", "--json",
                       "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress
    first = json.loads(captured.out)["confint"]
    assert first["method"] == "bootstrap" and len(first["names"]) == 4
    assert all(lo < up for lo, up in zip(first["lower"], first["upper"], strict=True))
    assert main(argv) == 0  # the seed makes the replicates reproducible
    assert json.loads(capsys.readouterr().out)["confint"] == first
    assert main(SLEEP_RI + ["--confint", "bootstrap", "--nsim", "1"]) == 2
    assert "at least 2 bootstrap replicates" in capsys.readouterr().err


def test_text_output_of_confint_and_ddf(capsys):
    assert main(SLEEP_RI + ["--confint", "wald", "--ddf", "satterthwaite"]) == 0
    out = capsys.readouterr().out
    assert "Linear mixed model" in out or "REML" in out
    assert "Fixed effects (satterthwaite df):" in out
    assert "Confidence intervals (95%, wald):" in out


@pytest.mark.parametrize("kind", ["residuals", "group_lines", "profile"])
def test_every_plot_kind_default_out(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy",
                 "--plot", kind]) == 0
    assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    assert f"wrote {kind}.png" in capsys.readouterr().err


def test_glmm_link_and_pql_method(capsys):
    cbpp = mixedfx.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert main(["fit", formula, "--data", "cbpp", "--family", "binomial", "--link", "probit",
                 "--json"]) == 0
    ref = mixedfx.glmm(formula, cbpp, family="binomial", link="probit")
    assert json.loads(capsys.readouterr().out)["loglik"] == pytest.approx(ref.loglik, rel=1e-10)
    assert main(["fit", formula, "--data", "cbpp", "--family", "binomial", "--method", "pql",
                 "--ddf", "asymptotic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pql = mixedfx.glmm(formula, cbpp, family="binomial", method="pql")
    assert out["coef_table"]["terms"] == list(pql.fixef.index)
    np.testing.assert_allclose(out["coef_table"]["estimate"], pql.fixef.to_numpy(), rtol=1e-10)


@pytest.mark.parametrize(("argv", "message"), [
    (["--ddf", "satterthwaite"], "use --ddf asymptotic"),
    (["--link", "cubic"], "cubic"),
    (["--method", "agq", "--n-agq", "0"], "agq"),
    (["--plot", "profile"], "does not offer"),
])
def test_glmm_options_that_do_not_apply(argv, message, capsys):
    base = ["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data",
            "cbpp", "--family", "binomial"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_repeated_variance_options(capsys):
    argv = ["fit", "distance ~ age + (1 | Subject)", "--data", "Orthodont", "--variance",
            "VarIdent(Sex)", "--variance", "VarPower(age)", "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    ref = mixedfx.lmm("distance ~ age + (1 | Subject)", mixedfx.datasets.load("Orthodont"),
                      variance=[mixedfx.VarIdent("Sex"), mixedfx.VarPower("age")])
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-10)


def test_unreadable_file_type_and_bad_output_path(tmp_path, capsys):
    bad = tmp_path / "data.xlsx"
    bad.write_text("x")
    assert main(["fit", "y ~ x + (1 | g)", "--data", str(bad)]) == 2
    assert "use a .csv or .parquet file" in capsys.readouterr().err
    out = tmp_path / "no" / "such" / "dir" / "cat.png"
    assert main(SLEEP_RI + ["--plot", "caterpillar", "--out", str(out)]) == 4
    assert capsys.readouterr().err.startswith("error: ")


def test_progress_of_large_fits_and_glmm_save(tmp_path, monkeypatch, capsys):
    import mixedfx.cli as cli

    monkeypatch.setattr(cli, "PROGRESS_ROWS", 50)  # cbpp's 56 rows count as large here
    saved = tmp_path / "cbpp.mfx.json"
    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data",
                 "cbpp", "--family", "binomial", "--save", str(saved), "--plot", "caterpillar",
                 "--out", str(tmp_path / "herds.png")]) == 0
    err = capsys.readouterr().err
    assert "fitting 56 rows" in err and "evaluations)" in err
    loaded = mixedfx.load(saved)
    assert isinstance(loaded, mixedfx.GlmmResult) and loaded.family_object.name == "binomial"
    assert (tmp_path / "herds.png").stat().st_size > 1000
    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data",
                 "cbpp", "--family", "binomial", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_glmm_weights_and_offset_options(capsys):
    cbpp = mixedfx.datasets.load("cbpp")
    ref = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial")
    assert main(["fit", "I(incidence / size) ~ period + (1 | herd)", "--data", "cbpp",
                 "--family", "binomial", "--weights", "size", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-9)  # proportions with weights
    with_offset = mixedfx.glmm("incidence ~ period + (1 | herd)", cbpp, family="poisson",
                               offset="size")
    without = mixedfx.glmm("incidence ~ period + (1 | herd)", cbpp, family="poisson")
    assert main(["fit", "incidence ~ period + (1 | herd)", "--data", "cbpp", "--family",
                 "poisson", "--offset", "size", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(with_offset.loglik, rel=1e-10)
    assert abs(with_offset.loglik - without.loglik) > 1.0  # the offset column is used


def test_out_of_core_option(tmp_path, capsys):
    pytest.importorskip("duckdb")
    sleep = mixedfx.datasets.load("sleepstudy")
    sleep.iloc[:90].to_parquet(tmp_path / "part1.parquet")
    sleep.iloc[90:].to_parquet(tmp_path / "part2.parquet")
    glob = str(tmp_path / "part*.parquet")
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", glob, "--out-of-core",
                 "--ml", "--json"]) == 0
    captured = capsys.readouterr()
    ref = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    assert json.loads(captured.out)["loglik"] == pytest.approx(ref.loglik, rel=1e-9)
    assert "aggregating the model's blocks out of core" in captured.err
    assert "fitted in" in captured.err
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(tmp_path),
                 "--out-of-core", "--ml", "--json", "--quiet"]) == 0  # a directory of parts
    out = json.loads(capsys.readouterr().out)
    assert out["loglik"] == pytest.approx(ref.loglik, rel=1e-9)


def test_out_of_core_weights_and_offset(tmp_path, capsys):
    """--weights and --offset name columns out of core as in memory."""
    pytest.importorskip("duckdb")
    sleep = mixedfx.datasets.load("sleepstudy")
    sleep = sleep.assign(w=1 + (sleep.Days % 3), o=0.1 * sleep.Days)
    sleep.to_parquet(tmp_path / "part1.parquet")
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data",
                 str(tmp_path / "part1.parquet"), "--out-of-core", "--ml", "--json",
                 "--quiet", "--weights", "w", "--offset", "o"]) == 0
    ref = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, reml=False, weights="w",
                      offset="o")
    assert json.loads(capsys.readouterr().out)["loglik"] == pytest.approx(ref.loglik,
                                                                          rel=1e-9)


@pytest.mark.parametrize(("extra", "data", "message"), [
    (["--family", "poisson"], "part1.parquet", "drop --family"),
    ([], "sleep.csv", "is not a .parquet path, glob or directory"),
    ([], "absent.parquet", "no such file"),
    (["--weights", "nope"], "part1.parquet", "'nope' missing from part1.parquet"),
    (["--plot", "residuals"], "part1.parquet", "fitted out of core"),
])
def test_out_of_core_bad_input(extra, data, message, tmp_path, capsys):
    pytest.importorskip("duckdb")
    mixedfx.datasets.load("sleepstudy").to_parquet(tmp_path / "part1.parquet")
    argv = ["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(tmp_path / data),
            "--out-of-core", "--out", str(tmp_path / "x.png")] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err


def test_glmm_confint_profile_and_bootstrap(capsys):
    argv = ["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data",
            "cbpp", "--family", "binomial", "--quiet"]
    assert main(argv + ["--confint", "profile", "--json"]) == 0
    ci = json.loads(capsys.readouterr().out)["confint"]
    assert ci["names"][0] == "sd_(Intercept)|herd" and len(ci["names"]) == 5
    assert 0.3 < ci["lower"][0] < 0.4 and 1.0 < ci["upper"][0] < 1.2
    assert main(argv + ["--confint", "bootstrap", "--nsim", "8", "--json"]) == 0
    boot = json.loads(capsys.readouterr().out)["confint"]
    assert boot["method"] == "bootstrap" and boot["names"] == ci["names"]


def test_missing_matplotlib_exits_3_with_the_install_hint(tmp_path, monkeypatch, capsys):
    """--plot without matplotlib: status 3 (a missing optional dependency), no image."""
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    out = tmp_path / "cat.png"
    assert main(SLEEP_RI + ["--plot", "caterpillar", "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install 'mixedfx[plot]'" in err
    assert not out.exists()


def test_progress_of_bootstrap_and_profile_on_stderr(tmp_path, monkeypatch, capsys):
    """Long work (bootstrap intervals, profiles) reports on stderr, never on stdout."""
    monkeypatch.chdir(tmp_path)
    assert main(SLEEP_RI + ["--confint", "bootstrap", "--nsim", "4", "--json"]) == 0
    captured = capsys.readouterr()
    assert "computing bootstrap intervals" in captured.err
    assert "bootstrap intervals done" in captured.err
    assert json.loads(captured.out)["confint"]["method"] == "bootstrap"
    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--plot",
                 "profile"]) == 0
    err = capsys.readouterr().err
    assert "profiling the likelihood" in err and "wrote profile.png" in err
