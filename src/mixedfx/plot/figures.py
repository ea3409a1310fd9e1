"""The plot functions of :mod:`mixedfx.plot`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError


def _figure(nrows: int, ncols: int, width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("mixedfx.plot needs matplotlib: pip install 'mixedfx[plot]'") from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _model_frame(res) -> pd.DataFrame:
    model = getattr(res, "model", None)
    design = getattr(model, "design", None) if model is not None else None
    if design is None:
        raise DataError("this plot needs the model's data, which the result does not hold "
                        "(a fit out of core, or a loaded result without its model): refit "
                        "the model in memory (a pandas or polars DataFrame)")
    return design.frame


def caterpillar(res, group: str | None = None, *, level: float = 0.95, max_levels: int = 60):
    """Conditional modes with conditional intervals, ordered, per grouping factor.

    Parameters
    ----------
    res : LmmResult or GlmmResult
    group : str, optional
        One grouping factor; all by default (one row of panels each).
    level : float
        Coverage of the intervals (mode +- z * conditional sd).
    max_levels : int
        Factors with more levels show every level but without tick labels.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per term of each factor; levels sorted by the first term's mode.
    """
    groups = [group] if group is not None else list(res.ranef)
    unknown = [g for g in groups if g not in res.ranef]
    if unknown:
        raise DataError(f"no grouping factor '{unknown[0]}'; the model has "
                        f"{', '.join(res.ranef)}")
    z = stats.norm.ppf(0.5 + level / 2)
    ncols = max(res.ranef[g].shape[1] for g in groups)
    fig, axes = _figure(len(groups), ncols, 3.2 * ncols + 1,
                        sum(max(2.0, min(res.ranef[g].shape[0], max_levels) * 0.16 + 1)
                            for g in groups))
    for i, g in enumerate(groups):
        modes, sds = res.ranef[g], res.ranef_sd[g]
        order = np.argsort(modes.iloc[:, 0].to_numpy(), kind="stable")
        labels = [str(v) for v in modes.index[order]]
        ypos = np.arange(len(order))
        for j in range(ncols):
            ax = axes[i, j]
            if j >= modes.shape[1]:
                ax.set_visible(False)
                continue
            m = modes.iloc[order, j].to_numpy()
            s = sds.iloc[order, j].to_numpy()
            ax.axvline(0.0, color="0.6", lw=0.8)
            ax.errorbar(m, ypos, xerr=z * s, fmt="o", ms=3, color="C0", ecolor="C0", lw=1)
            ax.set_title(f"{g}: {modes.columns[j]}", fontsize=9)
            ax.set_xlabel("conditional mode")
            if len(order) <= max_levels:
                ax.set_yticks(ypos, labels if j == 0 else [""] * len(labels), fontsize=7)
            else:
                ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(g)
    return fig


def residuals(res):
    """Residuals against fitted values, and normal QQ plots of the scaled residuals and of
    each random effect's conditional modes.

    Returns
    -------
    matplotlib.figure.Figure
        Panel 1: residuals vs fitted; panel 2: QQ of scaled residuals; then one QQ panel
        per random-effect term and grouping factor.
    """
    if getattr(res, "fitted", None) is None or getattr(res, "residuals", None) is None:
        raise DataError("this fit holds no per-observation fitted values or residuals (it was "
                        "fitted out of core, from aggregated blocks): refit it in memory, or "
                        "plot its conditional modes with plot.caterpillar")
    effects = [(g, col) for g, frame in res.ranef.items() for col in frame.columns]
    n = 2 + len(effects)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(nrows, ncols, 3.4 * ncols, 3.0 * nrows)
    flat = axes.ravel()
    fitted = np.asarray(res.fitted, float)
    resid = np.asarray(res.residuals, float)
    ax = flat[0]
    ax.scatter(fitted, resid, s=6, alpha=0.6)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("fitted")
    ax.set_ylabel("residual")
    ax.set_title("Residuals vs fitted", fontsize=9)
    scaled = getattr(res, "scaled_residuals", None)
    _qq(flat[1], np.asarray(scaled if scaled is not None else resid, float),
        "Scaled residuals")
    for k, (g, col) in enumerate(effects):
        _qq(flat[2 + k], res.ranef[g][col].to_numpy(float), f"{g}: {col}")
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig


def _qq(ax, values: np.ndarray, title: str) -> None:
    values = np.sort(values[np.isfinite(values)])
    q = stats.norm.ppf((np.arange(1, len(values) + 1) - 0.5) / len(values))
    ax.scatter(q, values, s=8)
    if len(values) > 1:
        lo, hi = np.percentile(values, [25, 75])
        qlo, qhi = stats.norm.ppf([0.25, 0.75])
        slope = (hi - lo) / (qhi - qlo) if hi > lo else 1.0
        ax.plot(q, lo + slope * (q - qlo), color="0.5", lw=0.8)
    ax.set_xlabel("normal quantile")
    ax.set_ylabel("sample quantile")
    ax.set_title(f"Normal QQ: {title}", fontsize=9)


def group_lines(res, x: str | None = None, group: str | None = None):
    """Per-group lines of a random-slope model: least squares per group (left) and the
    model's conditional lines (right), each with the population line.

    Parameters
    ----------
    res : LmmResult
        A fit with a term ``(1 + x | group)``.
    x : str, optional
        The covariate with a random slope; the first one found by default.
    group : str, optional
        The grouping factor of that term.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels; each has one line per level plus the population line (thick, black).
    """
    candidates = [(g, c) for g, frame in res.ranef.items() for c in frame.columns
                  if c != "(Intercept)" and "(Intercept)" in frame.columns
                  and c in res.fixef.index and "(Intercept)" in res.fixef.index]
    if x is not None:
        candidates = [(g, c) for g, c in candidates if c == x]
    if group is not None:
        candidates = [(g, c) for g, c in candidates if g == group]
    if not candidates:
        raise DataError("group_lines needs a term (1 + x | group) with x also a fixed effect"
                        + (f" (x='{x}')" if x else "") + "; the model's random terms are "
                        + ", ".join(f"{g}: {list(f.columns)}" for g, f in res.ranef.items()))
    g, col = candidates[0]
    frame = _model_frame(res)
    if col not in frame.columns:
        raise DataError(f"the slope term '{col}' is not a data column; group_lines plots "
                        "slopes of plain numeric covariates")
    xs = frame[col].to_numpy(float)
    y = np.asarray(res.fitted, float) + np.asarray(res.residuals, float)
    levels = [str(v) for v in res.ranef[g].index]
    group_col = frame[g] if g in frame.columns else None
    if group_col is None:
        raise DataError(f"the grouping factor '{g}' is not a single data column")
    labels = group_col.astype(str).to_numpy()
    b0, b1 = res.fixef["(Intercept)"], res.fixef[col]
    grid = np.linspace(np.nanmin(xs), np.nanmax(xs), 2)
    fig, axes = _figure(1, 2, 10, 4)
    left, right = axes[0]
    for lev in levels:
        sel = labels == lev
        if sel.sum() >= 2 and np.ptp(xs[sel]) > 0:
            slope, intercept = np.polyfit(xs[sel], y[sel], 1)
            left.plot(grid, intercept + slope * grid, color="C0", lw=0.8, alpha=0.7)
        u = res.ranef[g].loc[res.ranef[g].index[levels.index(lev)]]
        right.plot(grid, b0 + u["(Intercept)"] + (b1 + u[col]) * grid, color="C1", lw=0.8,
                   alpha=0.7)
    for ax, title in ((left, f"Least squares per {g}"), (right, "Conditional (shrunken)")):
        ax.plot(grid, b0 + b1 * grid, color="black", lw=2.5, label="population")
        ax.set_xlabel(col)
        ax.set_ylabel("response")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="best", fontsize=8)
    right.sharey(left)
    return fig


def profile(res, which=None):
    """Zeta traces of the likelihood profile, one panel per parameter.

    Parameters
    ----------
    res : LmmResult or Profile
        A fit (profiled here) or the result of ``res.profile()``.
    which : list of str, optional
        Parameters to profile (names as ``confint``'s rows).

    Returns
    -------
    matplotlib.figure.Figure
        zeta against the parameter; dashed lines at zeta = +-1.96 (95 % interval).
    """
    if not hasattr(res, "traces") and not callable(getattr(res, "profile", None)):
        raise DataError(f"profile plots need likelihood profiles, which {type(res).__name__} "
                        "does not offer; profile a linear mixed model (mixedfx.lmm)")
    prof = res if hasattr(res, "traces") else res.profile(which=which)
    names = list(prof.traces)
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(nrows, ncols, 3.3 * ncols, 2.8 * nrows)
    flat = axes.ravel()
    cut = stats.norm.ppf(0.975)
    for ax, name in zip(flat, names, strict=False):
        trace = prof.traces[name]
        ax.plot(trace[name].to_numpy(float), trace["zeta"].to_numpy(float), "o-", ms=3)
        for level in (-cut, 0.0, cut):
            ax.axhline(level, color="0.6", lw=0.8, ls="--" if level else "-")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("zeta")
    for ax in flat[len(names):]:
        ax.set_visible(False)
    return fig


def marginal_vs_conditional(res, covariate: str, *, points: int = 60,
                            newdata: pd.DataFrame | None = None):
    """Population-averaged (marginal) mean against the mean of a typical group.

    For a non-identity link the two differ: E[g^-1(x'beta + z'b)] over the random effects
    is flatter than g^-1(x'beta), the curve of a group whose random effects are zero.

    Parameters
    ----------
    res : GlmmResult or LmmResult
        A fit whose ``predict`` supports ``kind="fixed"`` and ``kind="marginal"``.
    covariate : str
        Numeric column varied along the x axis.
    points : int
        Grid size.
    newdata : pandas.DataFrame, optional
        One row of the other columns' values; by default numeric columns at their mean and
        other columns at their most frequent value in the model's data.

    Returns
    -------
    matplotlib.figure.Figure
        Two curves on the response scale.
    """
    frame = _model_frame(res)
    if covariate not in frame.columns or frame[covariate].dtype.kind not in "iuf":
        numeric = ", ".join(c for c in frame.columns if frame[c].dtype.kind in "iuf")
        raise DataError(f"'{covariate}' is not a numeric column of the model's data; numeric "
                        f"columns are: {numeric}")
    if newdata is None:
        base = {}
        for c in frame.columns:
            col = frame[c]
            base[c] = [col.mean()] if col.dtype.kind in "iuf" else [col.mode().iloc[0]]
        newdata = pd.DataFrame(base)
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                newdata[c] = pd.Categorical(newdata[c], categories=frame[c].cat.categories)
    grid = np.linspace(frame[covariate].min(), frame[covariate].max(), points)
    rows = newdata.iloc[np.zeros(points, dtype=int)].reset_index(drop=True)
    rows[covariate] = grid
    typical = np.asarray(res.predict(rows, kind="fixed", scale="response"), float)
    marginal = np.asarray(res.predict(rows, kind="marginal", scale="response"), float)
    fig, axes = _figure(1, 1, 5.5, 4)
    ax = axes[0, 0]
    ax.plot(grid, typical, color="C0", label="conditional (random effects = 0)")
    ax.plot(grid, marginal, color="C3", ls="--", label="marginal (population average)")
    ax.set_xlabel(covariate)
    ax.set_ylabel("mean response")
    ax.set_title("Conditional vs marginal mean", fontsize=9)
    ax.legend(loc="best", fontsize=8)
    return fig
