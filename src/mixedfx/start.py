"""Starting values for theta from ANOVA-type moment estimates.

lme4 starts every fit at the identity factor (theta = 1 on the diagonal, 0 off it). When the
optimum is far from there the optimizer spends half its evaluations getting close. A cheap
moment estimate (one pass of group sums per term) usually lands near the optimum instead:
on InstEval it cuts NEWUOA from 92 to about 50 evaluations.

The estimate: ordinary least-squares residuals r of the fixed part; then, term by term from
the coarsest grouping factor (fewest levels) to the finest, per-level least-squares
coefficients of r on the term's columns, their between-level variance minus the average
sampling variance (the one-way ANOVA estimator, generalised to vector terms), and r reduced by
the shrunken per-level fits before the next term so that nested factors are not counted twice.
Relative to the residual variance left over, the variances give the diagonal of each factor;
off-diagonal entries start at zero, as lme4's do. Anything degenerate falls back to lme4's
start for that term.
"""

from __future__ import annotations

import numpy as np

from .design import ReTerm
from .design.reterm import lower_indices

MIN_THETA = 0.05  # keep the start off the boundary, where NEWUOA's first steps are wasted
MAX_THETA = 20.0


def _level_fits(term: ReTerm, r: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Per-level weighted least-squares coefficients of r on the term's columns.

    Returns the coefficients (G, d), the per-level cross-products Z'WZ (G, d, d) and a mask of
    levels whose cross-product is well conditioned.
    """
    G, d = term.nlevels, term.dim
    Zw = term.Z * w[:, None]
    ztz = np.zeros((G, d, d))
    for a in range(d):
        for b in range(a, d):
            s = np.bincount(term.codes, weights=Zw[:, a] * term.Z[:, b], minlength=G)
            ztz[:, a, b] = ztz[:, b, a] = s
    ztr = np.stack([np.bincount(term.codes, weights=Zw[:, a] * r, minlength=G)
                    for a in range(d)], axis=1)
    det = np.linalg.det(ztz) if d > 1 else ztz[:, 0, 0]
    scale = np.prod(np.maximum(np.einsum("gaa->ga", ztz), 1e-300), axis=1)
    ok = det > 1e-8 * scale
    coef = np.zeros((G, d))
    if ok.any():
        coef[ok] = np.linalg.solve(ztz[ok], ztr[ok][..., None])[..., 0]
    return coef, ztz, ok


def moment_start(terms: list[ReTerm], X: np.ndarray, y: np.ndarray, weights: np.ndarray
                 ) -> np.ndarray:
    """Theta to start the optimizer from (terms in the given order, lme4's theta layout).

    Parameters
    ----------
    terms : list of ReTerm
        Random-effects terms (the order of the returned theta).
    X : numpy.ndarray
        Fixed-effects model matrix (full column rank).
    y : numpy.ndarray
        Response minus offset.
    weights : numpy.ndarray
        Prior weights.

    Returns
    -------
    numpy.ndarray
        Starting theta; lme4's identity start for any term whose estimate is degenerate.
    """
    sw = np.sqrt(weights)
    beta, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    r = y - X @ beta
    n = len(r)
    variances: list[np.ndarray | None] = [None] * len(terms)
    sigma2 = float(np.sum(weights * r**2) / max(n - X.shape[1], 1))
    for k in sorted(range(len(terms)), key=lambda k: terms[k].nlevels):
        t = terms[k]
        coef, ztz, ok = _level_fits(t, r, weights)
        if ok.sum() < 3:
            continue
        fitted = np.einsum("ij,ij->i", t.Z, coef[t.codes])
        resid_ss = float(np.sum(weights * (r - fitted) ** 2))
        within = resid_ss / max(n - int(ok.sum()) * t.dim, 1)
        inv = np.linalg.inv(ztz[ok])
        spread = coef[ok].var(axis=0, ddof=1)
        var = spread - within * np.einsum("gaa->a", inv) / ok.sum()
        if not np.all(np.isfinite(var)):
            continue
        var = np.maximum(var, 0.0)
        variances[k] = var
        # remove the shrunken level fits (diagonal shrinkage) before the next, finer term
        shrink = var / (var + within * np.einsum("gaa->ga", np.linalg.pinv(ztz)) + 1e-300)
        r = r - np.einsum("ij,ij->i", t.Z, (shrink * coef)[t.codes])
        sigma2 = within
    sigma2 = max(sigma2, 1e-12 * float(np.var(y)) + 1e-300)
    out = []
    for t, var in zip(terms, variances, strict=True):
        rows, cols = lower_indices(t.dim)
        if var is None:
            out.append(t.theta_initial())
            continue
        diag = np.clip(np.sqrt(var / sigma2), MIN_THETA, MAX_THETA)
        out.append(np.where(rows == cols, diag[rows], 0.0))
    return np.concatenate(out)
