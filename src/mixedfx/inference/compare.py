"""Likelihood-ratio comparison of nested mixed models, as lme4's ``anova(m1, m2, ...)``.

Models are ordered by their number of parameters; each row after the first is tested
against the row before it: chisq = 2 (loglik_i - loglik_{i-1}) (floored at 0) on
npar_i - npar_{i-1} degrees of freedom. REML likelihoods of models with different fixed
effects are not comparable (the REML criterion depends on the fixed-effects design), so REML
fits are refitted by maximum likelihood unless ``refit=False``, which is accepted only when
every model is a REML fit with the same fixed-effects design.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError

COLUMNS = ("npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value")


@dataclass(frozen=True, eq=False)
class Comparison:
    """Likelihood-ratio table of nested models (lme4's ``anova`` of several fits).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model, ordered by ``npar``: ``npar, aic, bic, loglik, deviance, chisq,
        df, p_value``; the first row has no test (NaN).
    formulas : tuple of str
        The formula of each row.
    criterion : str
        ``"ML"`` or ``"REML"``: the likelihood the table is built from.
    refitted : tuple of str
        Names of the rows that were REML fits refitted by maximum likelihood.
    nsim : int
        Parametric bootstrap replicates behind the ``p_boot`` column (0: no column).
    """

    table: pd.DataFrame
    formulas: tuple[str, ...]
    criterion: str
    refitted: tuple[str, ...]
    nsim: int = 0

    def __str__(self) -> str:
        lines = []
        if self.refitted:
            lines.append(f"refitted by ML (instead of REML): {', '.join(self.refitted)}")
        lines.append("Models:")
        lines += [f"{name}: {f}" for name, f in zip(self.table.index, self.formulas,
                                                    strict=True)]
        shown = self.table.copy()
        shown["npar"] = shown["npar"].astype(int)
        with pd.option_context("display.width", 120):
            lines.append(shown.to_string(float_format=lambda v: f"{v:.6g}", na_rep=""))
        lines.append(f"(likelihood: {self.criterion}"
                     + (f"; p_boot from {self.nsim} parametric bootstrap replicates)"
                        if self.nsim else ")"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serializable form (NaN as None)."""
        rows = {name: {c: (None if pd.isna(v) else float(v)) for c, v in row.items()}
                for name, row in self.table.iterrows()}
        return {"table": rows, "formulas": list(self.formulas), "criterion": self.criterion,
                "refitted": list(self.refitted), "nsim": self.nsim}


def _response(res) -> np.ndarray | None:
    model = getattr(res, "model", None)
    design = getattr(model, "design", None)
    return None if design is None else np.asarray(design.y)


def _check_same_data(results: list, names: list[str]) -> None:
    n0 = results[0].nobs
    for r, name in zip(results[1:], names[1:], strict=True):
        if r.nobs != n0:
            raise DataError(
                f"models fit to different data cannot be compared: {names[0]} uses {n0} "
                f"observations and {name} uses {r.nobs} (missing values dropped in one model's "
                "columns?); fit every model to the same rows")
    y0 = _response(results[0])
    for r, name in zip(results[1:], names[1:], strict=True):
        y = _response(r)
        if y0 is not None and y is not None and not np.array_equal(y0, y):
            raise DataError(
                f"models fit to different responses cannot be compared: the response of "
                f"{name} ({r.formula.split('~')[0].strip()}) differs from that of {names[0]} "
                f"({results[0].formula.split('~')[0].strip()}); a likelihood-ratio test needs "
                "the same response values")


def _same_fixed(a, b) -> bool:
    ma, mb = getattr(a, "model", None), getattr(b, "model", None)
    if ma is not None and mb is not None:
        return ma.X.shape == mb.X.shape and np.allclose(ma.X, mb.X, rtol=1e-12, atol=0)
    return list(a.fixef.index) == list(b.fixef.index)


def _ml_refit(res):
    model = getattr(res, "model", None)
    if model is None or not hasattr(model, "with_reml"):
        raise DataError(f"cannot refit '{res.formula}' by ML: the result does not keep its "
                        "model (deserialized?); fit it again with reml=False")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the original fit already warned about its problems
        return model.with_reml(False).fit(data_name=getattr(res, "data_name", None))


class _LrtJob:
    """One replicate of a parametric bootstrap LRT: simulate from the smaller model, refit
    both models, return the likelihood-ratio statistic."""

    def __init__(self, null_model, alt_model, sim) -> None:
        self.null_model, self.alt_model, self.sim = null_model, alt_model, sim

    def run(self, seed) -> tuple[float]:
        y = self.sim.draw(np.random.default_rng(seed))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                null = self.null_model.with_response(y).fit()
                alt = self.alt_model.with_response(y).fit()
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return (np.nan,)
        return (2 * max(0.0, alt.loglik - null.loglik),)


def _bootstrap_p(fits: list, chisq: np.ndarray, df: np.ndarray, nsim: int, seed,
                 n_jobs: int, progress: bool | None) -> np.ndarray:
    from .bootstrap import run_replicates
    from .simulate import simulator

    p = np.full(len(fits), np.nan)
    children = np.random.SeedSequence(seed).spawn(len(fits))
    for i in range(1, len(fits)):
        if not df[i] > 0:
            continue
        job = _LrtJob(fits[i - 1].model, fits[i].model, simulator(fits[i - 1]))
        stats_ = np.array([r[0] for r in run_replicates(job, nsim, seed=children[i],
                                                          n_jobs=n_jobs, progress=progress,
                                                          label="bootstrap LRT")])
        ok = stats_[np.isfinite(stats_)]
        # (1 + #{T* >= T}) / (1 + R); a tolerance keeps ties from rounding noise in
        p[i] = (1 + np.sum(ok >= chisq[i] - 1e-8 * max(1.0, chisq[i]))) / (1 + len(ok))
    return p


def compare(*results, refit: bool = True, names: list[str] | None = None, nsim: int = 0,
            seed: int | None = None, n_jobs: int = 1,
            progress: bool | None = None) -> Comparison:
    """Likelihood-ratio tests of nested mixed models (lme4's ``anova(m1, m2, ...)``).

    Parameters
    ----------
    *results : LmmResult
        Two or more fits of nested models to the same data and response (plain or with a
        residual structure: anything with ``loglik``, ``npar``, ``nobs`` and a model).
    refit : bool, default True
        Refit REML fits by maximum likelihood first (as lme4). With ``refit=False`` the REML
        likelihoods are compared directly, which is valid only for models with the same fixed
        effects (they differ in random effects or residual structure); other cases are
        refused.
    names : list of str, optional
        Row labels; ``model1``, ``model2``, ... in the order given by default.
    nsim : int, default 0
        With ``nsim > 0``, add a ``p_boot`` column: the parametric bootstrap p-value of each
        test (as pbkrtest's ``PBmodcomp``): simulate ``nsim`` responses from the smaller
        model's fit, refit both models to each, and count the statistics at least as large
        as the observed one, ``(1 + count) / (1 + nsim)``. Honest where the chi-square
        reference is not, e.g. for a variance tested at zero.
    seed, n_jobs, progress
        Bootstrap settings (see :func:`mixedfx.inference.bootstrap.bootstrap`).

    Returns
    -------
    Comparison
        The table ordered by ``npar`` (ties keep the given order).

    Raises
    ------
    DataError
        Fewer than two models, models fit to different rows or responses, or ``refit=False``
        with REML fits whose fixed effects differ (or a mix of REML and ML fits).
    """
    results = list(results)
    if len(results) < 2:
        raise DataError("compare() needs at least two fitted models, e.g. "
                        "mixedfx.compare(res_small, res_large)")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(results))]
    if len(names) != len(results) or len(set(names)) != len(names):
        raise DataError(f"names= needs {len(results)} distinct labels, got {names}")
    _check_same_data(results, names)
    reml = [bool(getattr(r, "reml", False)) for r in results]
    refitted: list[str] = []
    if refit:
        fits = []
        for r, name, is_reml in zip(results, names, reml, strict=True):
            if is_reml:
                fits.append(_ml_refit(r))
                refitted.append(name)
            else:
                fits.append(r)
        criterion = "ML"
    else:
        if any(reml) and not all(reml):
            raise DataError("refit=False cannot compare a REML fit with an ML fit: use "
                            "refit=True (the default) to compare ML likelihoods")
        if all(reml):
            for r, name in zip(results[1:], names[1:], strict=True):
                if not _same_fixed(results[0], r):
                    raise DataError(
                        f"refit=False compares REML likelihoods, which is valid only for models "
                        f"with the same fixed effects; {name} ('{r.formula}') and {names[0]} "
                        f"('{results[0].formula}') differ in their fixed effects. Use "
                        "refit=True (the default) to compare their ML fits")
        fits = results
        criterion = "REML" if all(reml) else "ML"
    order = sorted(range(len(fits)), key=lambda i: fits[i].npar)
    npar = np.array([fits[i].npar for i in order], dtype=float)
    loglik = np.array([fits[i].loglik for i in order])
    nobs = fits[0].nobs
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0.0, np.diff(loglik))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    table = pd.DataFrame({
        "npar": npar, "aic": -2 * loglik + 2 * npar, "bic": -2 * loglik + np.log(nobs) * npar,
        "loglik": loglik, "deviance": -2 * loglik, "chisq": chisq, "df": df, "p_value": p,
    }, index=pd.Index([names[i] for i in order], dtype=object))
    if nsim:
        table["p_boot"] = _bootstrap_p([fits[i] for i in order], chisq, df, nsim, seed, n_jobs,
                                       progress)
    return Comparison(table=table, formulas=tuple(results[i].formula for i in order),
                      criterion=criterion, refitted=tuple(refitted), nsim=int(nsim))
