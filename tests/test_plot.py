"""Plots render headless and show what they claim (axes, labels, one point per level)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import mixedfx  # noqa: E402
from mixedfx import plot  # noqa: E402


@pytest.fixture(scope="module")
def sleep_fit():
    return mixedfx.lmm("Reaction ~ Days + (Days | Subject)", mixedfx.datasets.load("sleepstudy"))


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_caterpillar_one_point_per_level_sorted(sleep_fit, tmp_path):
    fig = plot.caterpillar(sleep_fit)
    axes = _visible(fig)
    assert [ax.get_title() for ax in axes] == ["Subject: (Intercept)", "Subject: Days"]
    for ax, col in zip(axes, ["(Intercept)", "Days"], strict=True):
        xs = ax.lines[-1].get_xdata()  # the error bar's points
        assert len(xs) == 18
        assert sorted(xs) == sorted(sleep_fit.ranef["Subject"][col])
    first = axes[0].lines[-1].get_xdata()
    assert np.all(np.diff(first) >= 0)  # ordered by the intercept's mode
    assert [t.get_text() for t in axes[0].get_yticklabels()][0] == \
        str(sleep_fit.ranef["Subject"]["(Intercept)"].idxmin())
    fig.savefig(tmp_path / "cat.png")
    assert (tmp_path / "cat.png").stat().st_size > 1000


def test_caterpillar_crossed_factors_and_bad_group():
    pen = mixedfx.datasets.load("Penicillin")
    res = mixedfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    fig = plot.caterpillar(res)
    axes = _visible(fig)
    assert [len(ax.lines[-1].get_xdata()) for ax in axes] == [24, 6]
    with pytest.raises(mixedfx.DataError, match="no grouping factor 'batch'"):
        plot.caterpillar(res, "batch")


def test_residual_panels(sleep_fit):
    fig = plot.residuals(sleep_fit)
    axes = _visible(fig)
    assert len(axes) == 4
    assert axes[0].get_xlabel() == "fitted" and axes[0].get_ylabel() == "residual"
    assert len(axes[0].collections[0].get_offsets()) == 180
    assert axes[2].get_title() == "Normal QQ: Subject: (Intercept)"
    assert len(axes[2].collections[0].get_offsets()) == 18


def test_group_lines_show_shrinkage(sleep_fit):
    fig = plot.group_lines(sleep_fit)
    left, right = _visible(fig)
    assert len(left.lines) == 18 + 1 and len(right.lines) == 18 + 1
    spread = [np.std([ln.get_ydata()[1] - ln.get_ydata()[0] for ln in ax.lines[:-1]])
              for ax in (left, right)]
    assert spread[1] < spread[0]  # conditional slopes are shrunk toward the population
    with pytest.raises(mixedfx.DataError, match="needs a term"):
        plot.group_lines(mixedfx.lmm("Reaction ~ Days + (1 | Subject)",
                                     mixedfx.datasets.load("sleepstudy")))


def test_profile_zeta_panels():
    res = mixedfx.lmm("Yield ~ 1 + (1 | Batch)", mixedfx.datasets.load("Dyestuff"))
    fig = plot.profile(res)
    axes = _visible(fig)
    assert [ax.get_xlabel() for ax in axes] == list(res.profile().traces)
    assert all(ax.get_ylabel() == "zeta" for ax in axes)


def test_marginal_equals_conditional_for_identity_link(sleep_fit):
    fig = plot.marginal_vs_conditional(sleep_fit, "Days", points=11)
    ax = _visible(fig)[0]
    typical, marginal = (ln.get_ydata() for ln in ax.lines)
    np.testing.assert_allclose(typical, marginal, rtol=1e-10)
    assert len(typical) == 11
    with pytest.raises(mixedfx.DataError, match="not a numeric column"):
        plot.marginal_vs_conditional(sleep_fit, "Subject")


def test_glmm_plots_and_profile_refused():
    cbpp = mixedfx.datasets.load("cbpp")
    res = mixedfx.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial")
    fig = plot.caterpillar(res)
    (ax,) = fig.axes
    xs = ax.lines[-1].get_xdata()
    assert len(xs) == cbpp["herd"].nunique()
    assert sorted(xs) == sorted(res.ranef["herd"]["(Intercept)"])
    assert len(plot.residuals(res).axes) == 3
    if not callable(getattr(res, "profile", None)):
        with pytest.raises(mixedfx.DataError, match="does not offer"):
            plot.profile(res)


def test_marginal_flatter_than_conditional_for_glmms():
    from mixedfx.datasets import simulate

    data = simulate.binary_outcomes(seed=5)
    logit = mixedfx.glmm("passed ~ hours + (1 | school)", data, family="binomial")
    ax = _visible(plot.marginal_vs_conditional(logit, "hours", points=21))[0]
    typical, marginal = (np.asarray(ln.get_ydata()) for ln in ax.lines)
    assert len(typical) == 21 and ax.get_xlabel() == "hours"
    assert np.ptp(marginal) < np.ptp(typical)  # the population curve is flatter
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "conditional (random effects = 0)", "marginal (population average)"]
    counts = mixedfx.glmm("absences ~ hours + (1 | school)", data, family="poisson")
    ax = _visible(plot.marginal_vs_conditional(counts, "hours", points=5))[0]
    typical, marginal = (np.asarray(ln.get_ydata()) for ln in ax.lines)
    sd = counts.varcorr["sdcor"].iloc[0]
    np.testing.assert_allclose(marginal, typical * np.exp(sd**2 / 2), rtol=1e-6)


def test_out_of_core_fit_plots_what_it_holds(tmp_path):
    pytest.importorskip("duckdb")
    sleep = mixedfx.datasets.load("sleepstudy")
    path = tmp_path / "sleep.parquet"
    sleep.to_parquet(path)
    res = mixedfx.lmm("Reaction ~ Days + (Days | Subject)", str(path))
    if res.fitted is not None:
        pytest.skip("out-of-core fits now keep per-row values")
    axes = _visible(plot.caterpillar(res))  # modes and conditional sds are there
    assert [len(ax.lines[-1].get_xdata()) for ax in axes] == [18, 18]
    with pytest.raises(mixedfx.DataError, match="out of core"):
        plot.residuals(res)
    with pytest.raises(mixedfx.DataError, match="out of core"):
        plot.group_lines(res)
