"""Profile intervals and likelihood-ratio tables against lme4 beyond the shared references
(tests/reference/intervals_refs.R), and the runnable examples of docs/intervals.md."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx import datasets
from tests.conftest import REFERENCE, load_reference

DOCS = Path(__file__).parent.parent / "docs" / "intervals.md"
DATA = {
    "dyestuff2_singular": "Dyestuff2",
    "sleepstudy_zerocorr": "sleepstudy",
    "sleepstudy_ml": "sleepstudy",
    "penicillin_crossed": "Penicillin",
    "pastes_nested": "Pastes",
}


@pytest.fixture(scope="module")
def refs() -> dict:
    return load_reference("intervals_refs")


@pytest.mark.parametrize("case", list(DATA) + ["vector3"])
def test_profile_intervals_match_lme4(case, refs):
    ref = refs["profile"][case]
    data = pd.read_csv(REFERENCE / "profile_vector3.csv") if case == "vector3" \
        else datasets.load(DATA[case])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mixedfx.lmm(ref["formula"], data, reml=ref["reml"])
    prof = res.profile()
    ci = prof.confint()
    assert list(ci.index) == ref["names"]
    for row, lo, hi in zip(ref["names"], ref["lower"], ref["upper"], strict=True):
        width = hi - lo
        # A correlation whose trace runs into +-1 has a steep end that both programs
        # interpolate between few points: there the two splines (and the exact crossing,
        # 0.948 for cor_x.(Intercept)|g where lme4 says 0.960 and mixedfx 0.952) differ by a
        # few per cent of the width; everywhere else they agree to 1e-3 of it.
        x = prof.traces[row][row]
        steep = row.startswith("cor_") and (x.max() >= 1.0 or x.min() <= -1.0)
        tol = 0.025 if steep else 1e-3
        assert abs(ci.loc[row, "lower"] - lo) < tol * width, row
        assert abs(ci.loc[row, "upper"] - hi) < tol * width, row


def _check_table(cmp, ref):
    t = cmp.table
    np.testing.assert_array_equal(t.npar.to_numpy(), ref["npar"])
    for col in ("aic", "bic", "loglik", "deviance"):
        np.testing.assert_allclose(t[col].to_numpy(), ref[col], rtol=1e-7, err_msg=col)
    for col in ("chisq", "df", "p_value"):
        expected = np.array([np.nan if v is None else v for v in ref[col]], dtype=float)
        np.testing.assert_allclose(t[col].to_numpy(), expected, rtol=1e-5, err_msg=col)


def test_three_model_comparison_matches_lme4(refs):
    ref = refs["compare"]["three"]
    sleep = datasets.load("sleepstudy")
    fits = [mixedfx.lmm(f, sleep) for f in reversed(ref["formulas"])]
    cmp = mixedfx.compare(*fits)
    assert [f.replace(" ", "") for f in cmp.formulas] == [f.replace(" ", "")
                                                          for f in ref["formulas"]]
    _check_table(cmp, ref)


def test_reml_comparison_matches_lme4(refs):
    ref = refs["compare"]["reml"]
    sleep = datasets.load("sleepstudy")
    fits = [mixedfx.lmm(f, sleep) for f in ref["formulas"]]
    _check_table(mixedfx.compare(*fits, refit=False), ref)


def test_level_widens_intervals():
    res = mixedfx.lmm("Yield ~ 1 + (1 | Batch)", datasets.load("Dyestuff"))
    prof = res.profile()
    ci90, ci99 = prof.confint(0.90), prof.confint(0.99)
    assert np.all(ci99.lower < ci90.lower) and np.all(ci99.upper > ci90.upper)
    est = prof.estimates
    assert np.all((ci90.lower < est) & (est < ci90.upper))


def test_docs_examples_run(capsys):
    """Every python block of docs/intervals.md, in order, with a small bootstrap."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 4
    code = "\n".join(blocks).replace("fit.bootstrap(200,", "fit.bootstrap(20,").replace(
        "nsim=99,", "nsim=19,")
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, str(DOCS), "exec"), namespace)
    out = capsys.readouterr().out
    assert "sd_(Intercept)|Subject" in out and "42.1393" in out
    assert isinstance(namespace["boot"].replicates, pd.DataFrame)
    assert namespace["prof2"].confint().iloc[0, 0] == 0.0


def test_weighted_profile(refs):
    """Prior weights: variance rows as lme4; fixed-effect rows checked by the likelihood
    ratio itself (lme4's fixed-effect profiles mishandle weights: limits far too narrow)."""
    ref = refs["profile"]["sleepstudy_weighted"]
    sleep = datasets.load("sleepstudy")
    w = 1 + sleep.Days.to_numpy() / 9
    res = mixedfx.lmm(ref["formula"], sleep, weights=w)
    prof = res.profile()
    ci = prof.confint()
    for row, lo, hi in list(zip(ref["names"], ref["lower"], ref["upper"], strict=True))[:2]:
        assert abs(ci.loc[row, "lower"] - lo) < 1e-3 * (hi - lo), row
        assert abs(ci.loc[row, "upper"] - hi) < 1e-3 * (hi - lo), row
    row = prof.traces["Days"].iloc[2]
    fixed = mixedfx.lmm("Reaction ~ 1 + (1 | Subject)", sleep, reml=False, weights=w,
                        offset=row["Days"] * sleep.Days.to_numpy())
    assert row["zeta"] ** 2 == pytest.approx(fixed.objective - prof.base_deviance, rel=1e-6)
    wald = res.confint(method="wald")
    assert ci.loc["Days", "lower"] == pytest.approx(wald.loc["Days", "lower"], rel=0.02)


def test_cli_confint(capsys):
    from mixedfx.cli import main

    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--confint",
                 "profile"]) == 0
    out = capsys.readouterr().out
    assert "Confidence intervals (95%, profile)" in out and "sd_(Intercept)|Batch" in out
    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--confint", "wald",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["confint"]["names"][0] == "sd_(Intercept)|Batch"
    assert d["confint"]["lower"][0] is None and d["confint"]["lower"][2] is not None
