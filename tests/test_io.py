"""Saving and loading results: exact round trips, no code execution, tampering refused."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx
from mixedfx.io import MissingModel


def _assert_same(a, b, path="result"):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, tuple | list):
        assert type(a) is type(b) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{k}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b), path
        for name in a.__dataclass_fields__:
            if name != "model":
                _assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, float):  # numpy float64 scalars come back as Python floats
        assert isinstance(b, float) and a == b, (path, a, b)
    else:
        assert a == b and type(a) is type(b), (path, a, b)


@pytest.fixture(scope="module")
def sleep_fit():
    sleep = mixedfx.datasets.load("sleepstudy")
    return mixedfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)


def test_lmm_round_trip_is_exact(sleep_fit, tmp_path):
    path = sleep_fit.save(tmp_path / "fit.mfx.json")
    loaded = mixedfx.load(path)
    _assert_same(sleep_fit, loaded)
    assert loaded.summary() == sleep_fit.summary()
    _assert_same(loaded.model.design, sleep_fit.model.design, "design")


def test_loaded_lmm_keeps_its_model(sleep_fit, tmp_path):
    loaded = mixedfx.load(sleep_fit.save(tmp_path / "fit.mfx.json"))
    assert loaded.model.objective(loaded.theta) == sleep_fit.objective
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": pd.Categorical(["308", "new"])})
    np.testing.assert_array_equal(
        loaded.predict(new, allow_new_levels=True),
        sleep_fit.predict(new, allow_new_levels=True))


def test_categorical_weights_missing_and_crossed(tmp_path):
    pen = mixedfx.datasets.load("Penicillin")
    pen = pen.assign(w=np.linspace(0.5, 2.0, len(pen)))
    pen.loc[3, "diameter"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mixedfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, weights="w",
                          reml=False)
    loaded = mixedfx.load(res.save(tmp_path / "pen.mfx.json"))
    _assert_same(res, loaded)
    assert loaded.n_dropped == 1


OVARY = "follicles ~ sin(2*pi*Time) + cos(2*pi*Time) + (1 | Mare)"
ORTHO = "distance ~ age + Sex + (1 | Subject)"


def _structured(case: str) -> mixedfx.LmmResult:
    load = mixedfx.datasets.load
    if case == "ar1":
        return mixedfx.lmm(OVARY, load("Ovary"), correlation=mixedfx.AR1(group="Mare"))
    if case == "car1_ml":
        return mixedfx.lmm(OVARY, load("Ovary"), reml=False,
                           correlation=mixedfx.CAR1(group="Mare", time="Time"))
    if case == "compsymm":
        return mixedfx.lmm("strength ~ 1 + (1 | batch)", load("Pastes"),
                           correlation=mixedfx.CompSymm("batch:cask"))
    if case == "ar1_varident":
        return mixedfx.lmm(ORTHO, load("Orthodont"), correlation=mixedfx.AR1(),
                           variance=mixedfx.VarIdent("Sex", reference="Female"))
    return mixedfx.lmm(ORTHO, load("Orthodont"), variance=mixedfx.VarPower())  # of fitted


@pytest.mark.parametrize("case", ["ar1", "car1_ml", "compsymm", "ar1_varident",
                                  "varpower_fitted"])
def test_structured_result_round_trips_with_its_model(case, tmp_path):
    """Every attribute, and the model: the structures are bound again on load, so the
    loaded fit evaluates the same likelihood, simulates, predicts and refits as the fit."""
    res = _structured(case)
    loaded = mixedfx.load(res.save(tmp_path / f"{case}.mfx.json"))
    _assert_same(res, loaded)
    assert loaded.residual_params == res.residual_params
    assert type(loaded.model) is type(res.model) and loaded.model.reml == res.model.reml
    x = np.concatenate([res.theta, np.full(res.model.nstruct, 0.1)])
    assert loaded.model.objective(x) == res.model.objective(x)
    pd.testing.assert_frame_equal(loaded.simulate(2, seed=1), res.simulate(2, seed=1))
    pd.testing.assert_series_equal(loaded.predict(), res.predict())
    refit = loaded.model.fit()
    assert refit.loglik == pytest.approx(res.loglik, rel=1e-10)
    assert refit.residual_params == pytest.approx(res.residual_params, rel=1e-8)


def test_loaded_structured_fits_compare_and_predict_new_levels(tmp_path):
    ortho = mixedfx.datasets.load("Orthodont")
    base = mixedfx.lmm(ORTHO, ortho)
    hetero = _structured("ar1_varident")
    back = [mixedfx.load(r.save(tmp_path / f"{k}.mfx.json"))
            for k, r in (("base", base), ("hetero", hetero))]
    pd.testing.assert_frame_equal(mixedfx.compare(*back).table,
                                  mixedfx.compare(base, hetero).table)  # refitted by ML
    new = ortho.head(4).assign(Subject=["N1", "N1", "N2", "N2"])
    pd.testing.assert_series_equal(back[1].predict(new, allow_new_levels=True),
                                   hetero.predict(new, allow_new_levels=True))


def test_structure_on_a_date_column_keeps_its_model(tmp_path):
    """CAR(1) on a column of dates: the dates are stored ($datetimes) and the loaded model
    counts days as the fitted one does."""
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"subj": np.repeat(np.arange(12), 6), "t": np.tile(np.arange(6), 12)})
    data["y"] = rng.normal(size=len(data)) + rng.normal(size=12)[data.subj]
    data["day"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(data.t * 2, unit="D")
    res = mixedfx.lmm("y ~ 1 + (1 | subj)", data, correlation=mixedfx.CAR1("subj", "day"))
    loaded = mixedfx.load(res.save(tmp_path / "dates.mfx.json"))
    _assert_same(res, loaded)
    x = np.concatenate([res.theta, [0.3]])
    assert loaded.model.objective(x) == res.model.objective(x)
    pd.testing.assert_frame_equal(loaded.model.source.frame, res.model.source.frame,
                                  check_exact=True)


def test_structure_on_an_unstorable_column_loads_without_its_model(tmp_path):
    """A structure column of a type the format has no form for (here Decimal objects): the
    fit saves and loads, and its model says to refit when it is needed."""
    from decimal import Decimal

    ortho = mixedfx.datasets.load("Orthodont")
    ortho["g"] = [Decimal(1) if s == "Male" else Decimal(2) for s in ortho.Sex]
    res = mixedfx.lmm(ORTHO, ortho, variance=mixedfx.VarIdent("g"))
    loaded = mixedfx.load(res.save(tmp_path / "decimal.mfx.json"))
    _assert_same(res, loaded)
    assert isinstance(loaded.model, MissingModel)
    with pytest.raises(mixedfx.DataError, match="refit the model"):
        loaded.model.objective(loaded.theta)


def test_dates_durations_and_time_zones_round_trip():
    from mixedfx.io import _decode, _encode

    day = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(3) * 2, unit="D"))
    day[1] = pd.NaT
    frame = pd.DataFrame({"day": day, "zoned": day.dt.tz_localize("Europe/Paris"),
                          "seconds": day.astype("datetime64[s]"),
                          "lag": pd.to_timedelta(np.arange(3), unit="h"), "x": [1.0, 2, 3]},
                         index=pd.DatetimeIndex(day.fillna(pd.Timestamp("2020-01-01"))))
    back = _decode(json.loads(json.dumps(_encode(frame))))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    bad = _encode(day)
    bad["$series"]["values"]["$datetimes"]["dtype"] = "float64"
    with pytest.raises(mixedfx.DataError, match="not a date or duration dtype"):
        _decode(bad)


def test_tampered_file_is_refused(sleep_fit, tmp_path):
    path = sleep_fit.save(tmp_path / "fit.mfx.json")
    document = json.loads(path.read_text())
    text = json.dumps(document).replace('"Reaction ~ Days', '"Reaction ~ 0 + Days', 1)
    path.write_text(text)
    with pytest.raises(mixedfx.DataError, match="altered"):
        mixedfx.load(path)


def test_not_a_result_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(mixedfx.DataError, match="not a saved mixedfx result"):
        mixedfx.load(bad)
    bad.write_text("not json")
    with pytest.raises(mixedfx.DataError, match="not valid JSON"):
        mixedfx.load(bad)
    with pytest.raises(mixedfx.DataError, match="no such file"):
        mixedfx.load(tmp_path / "absent.json")


def test_unknown_record_type_is_refused(sleep_fit, tmp_path):
    """A file naming a class outside the fixed table is refused, even with a valid digest."""
    from mixedfx.io import _digest

    path = sleep_fit.save(tmp_path / "fit.mfx.json")
    document = json.loads(path.read_text())
    document["content"]["$record"]["type"] = "os.system"
    document["sha256"] = _digest(document["content"])
    path.write_text(json.dumps(document))
    with pytest.raises(mixedfx.DataError, match="unknown record type"):
        mixedfx.load(path)


@pytest.mark.parametrize("method", ["laplace", "agq", "pql"])
def test_glmm_round_trip(method, tmp_path):
    cbpp = mixedfx.datasets.load("cbpp")
    res = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial", method=method, n_agq=5 if method == "agq" else 1)
    loaded = mixedfx.load(res.save(tmp_path / "cbpp.mfx.json"))
    assert type(loaded) is type(res)
    _assert_same(res, loaded)
    assert loaded.family_object.name == "binomial"
    assert loaded.family_object.link.name == "logit"
    assert loaded.summary() == res.summary()
    assert type(loaded.model) is type(res.model)
    new = cbpp.iloc[:5].assign(herd="new")
    np.testing.assert_allclose(loaded.predict(new, allow_new_levels=True),
                               res.predict(new, allow_new_levels=True), rtol=1e-12)


def test_negative_binomial_round_trip(tmp_path):
    cbpp = mixedfx.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the herd variance is on the boundary here
        res = mixedfx.glmm("incidence ~ period + (1 | herd)", cbpp, family="negbinomial")
    loaded = mixedfx.load(res.save(tmp_path / "nb.mfx.json"))
    assert type(loaded) is type(res)
    _assert_same(res, loaded)
    assert loaded.summary() == res.summary()
    assert loaded.family_object.name == res.family_object.name
    np.testing.assert_allclose(loaded.predict(cbpp.iloc[:6]), res.predict(cbpp.iloc[:6]),
                               rtol=1e-12)


def test_out_of_core_result_round_trips(tmp_path):
    pytest.importorskip("duckdb")
    sleep = mixedfx.datasets.load("sleepstudy")
    path = tmp_path / "sleep.parquet"
    sleep.to_parquet(path)
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", str(path))
    loaded = mixedfx.load(res.save(tmp_path / "ooc.mfx.json"))
    _assert_same(res, loaded)
    # the aggregated model is not stored: estimates and standard errors come back, the
    # Satterthwaite df (which re-evaluate the likelihood) become z tests
    cols = ["effect", "group", "term", "estimate", "std_error", "statistic"]
    pd.testing.assert_frame_equal(loaded.tidy()[cols], res.tidy()[cols], check_exact=True)
