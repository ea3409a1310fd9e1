"""Type III F tests of fixed-effect terms, as lmerTest's ``anova``.

The hypothesis of each term is lmerTest's type III contrast (its ``get_contrasts_type3``,
the SAS definition): write the fixed effects in the over-parameterized coding where every
term has one column per level (or cell) of its factors, express those parameters through
the model's coefficients (L = pinv(X) X_full), and make the contrasts of each term
orthogonal to those of the terms that contain it (higher-order terms first). With
treatment contrasts a main effect that appears in an interaction is then tested averaged
over the other factor's levels, not at its reference level. Terms that no other term
contains, and every term under sum-to-zero codings, get the plain test that all of their
coefficients are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .coef_table import ddf_method


@dataclass(frozen=True)
class _Term:
    label: str
    variables: frozenset  # factor expressions of the term
    numeric: frozenset  # those that are not categorical
    cols: list  # positions in the model's coefficients
    full: np.ndarray  # the term's over-parameterized columns (n, k)

    @property
    def order(self) -> int:
        return len(self.variables)


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's zapsmall: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if mx <= 0 or not np.isfinite(mx):
        return x
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))))


def _terms(res) -> tuple[list[_Term], bool]:
    """The fixed-effect terms with their columns and full codings; whether there is an
    intercept."""
    from formulaic import model_matrix

    from ..design.functions import FORMULA_CONTEXT, r_powers
    from ..design.names import r_name
    from ..errors import DataError
    from ..formula import parse_formula

    parsed = parse_formula(res.formula)
    design = getattr(res.model, "design", None)
    if design is None or getattr(design, "frame", None) is None:
        raise DataError("the F tests of terms need the fit's data frame, which an out-of-core "
                        "fit does not hold; test a term's coefficients with "
                        "mixedfx.inference.ftests.contrast_test(res, L)")
    frame = design.frame
    mm = model_matrix(r_powers(parsed.fixed), frame, context=FORMULA_CONTEXT)
    spec = mm.model_spec
    names = [r_name(str(c)) for c in mm.columns]
    position = {n: k for k, n in enumerate(res.fixef.index)}
    categorical = {str(f.expr) for f in spec.factor_contrasts}
    out, intercept = [], False
    for term, idx in spec.term_indices.items():
        label = str(term)
        if label == "1":
            intercept = True
            continue
        cols = [position[names[i]] for i in idx if names[i] in position]
        if not cols:
            continue
        exprs = [str(f.expr) for f in term.factors]
        full = np.ones((len(frame), 1))
        for expr in exprs:
            sub = np.asarray(model_matrix(f"0 + {expr}", frame, context=FORMULA_CONTEXT),
                             float)
            full = (full[:, :, None] * sub[:, None, :]).reshape(len(frame), -1)
        out.append(_Term(label, frozenset(exprs), frozenset(e for e in exprs
                                                            if e not in categorical),
                         cols, full))
    return out, intercept


def _contains(inner: _Term, outer: _Term) -> bool:
    """lmerTest's containment: the variables of ``inner`` are a proper subset of those of
    ``outer`` and both have the same numeric covariates."""
    return (inner is not outer and inner.variables < outer.variables
            and inner.numeric == outer.numeric)


def type3_contrasts(res) -> dict[str, np.ndarray]:
    """Contrast matrix (rows: hypotheses, columns: coefficients) of each term's type III
    test, as lmerTest's ``get_contrasts_type3``."""
    terms, intercept = _terms(res)
    X = np.asarray(res.model.X, float)
    p = X.shape[1]
    marginal = {t.label: np.eye(p)[t.cols] for t in terms}
    if p <= 1 or len(terms) <= 1:
        return marginal
    blocks = ([np.ones((X.shape[0], 1))] if intercept else []) + [t.full for t in terms]
    full = np.hstack(blocks)
    owner = ([None] if intercept else []) + [t.label for t in terms for _ in
                                              range(t.full.shape[1])]
    # rows of L: the full coding's parameters; the model's coefficients are those among
    # them with identical columns (treatment contrasts); other codings test marginally
    rows = []
    for j in range(p):
        label = next((t.label for t in terms if j in t.cols), None)
        match = [k for k in range(full.shape[1]) if owner[k] == label
                 and np.allclose(full[:, k], X[:, j], rtol=0, atol=1e-12)]
        if not match:
            return marginal
        rows.append(match[0])
    L = _zapsmall((np.linalg.pinv(X) @ full).T)
    for term in sorted(terms, key=lambda t: -t.order):
        outer = [c for other in terms if _contains(term, other) for c in other.cols]
        if outer:
            A, B = L[:, outer], L[:, term.cols]
            coef, *_ = np.linalg.lstsq(A, B, rcond=None)
            L[:, term.cols] = _zapsmall(B - A @ coef)
    L = L[rows]
    out = {}
    for t in terms:
        C = L[:, t.cols].T
        out[t.label] = C[np.abs(C).sum(axis=1) > 1e-8]
    return out


def _asymptotic_test(res, L: np.ndarray, beta: np.ndarray | None = None) -> dict:
    beta = L @ (res.fixef.to_numpy(float) if beta is None else beta)
    V = L @ res.vcov.to_numpy(float) @ L.T
    q = np.linalg.matrix_rank(V)
    F = float(beta @ np.linalg.pinv(V) @ beta / q)
    return {"F": F, "num_df": q, "den_df": np.inf,
            "p_value": float(stats.chi2.sf(F * q, q))}


def contrast_test(res, L, ddf: str = "satterthwaite", rhs=None) -> dict:
    """Test of the hypothesis L beta = rhs for any contrast matrix, as lmerTest's
    ``contest`` (an F test; for one row F is the squared t statistic).

    Parameters
    ----------
    res : LmmResult
    L : array-like, shape (q, p) or (p,)
        Contrast rows over the fixed effects (in ``res.fixef`` order).
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}
    rhs : array-like of length q, optional
        Right-hand side (zeros by default).

    Returns
    -------
    dict
        ``F, num_df, den_df, p_value`` (and ``estimate``: L beta - rhs).
    """
    from ..errors import DataError

    method = ddf_method(ddf)
    p = len(res.fixef)
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[1] != p:
        raise DataError(f"the contrast has {L.shape[1]} columns but the model has {p} "
                        f"fixed effects ({', '.join(res.fixef.index)})")
    beta = res.fixef.to_numpy(float)
    shift = np.zeros(len(L)) if rhs is None else np.asarray(rhs, float).ravel()
    if shift.shape != (len(L),):
        raise DataError(f"rhs needs {len(L)} values, one per contrast row")
    if np.any(shift):  # beta - ginv(L) rhs, as lmerTest: L(beta - ginv(L) rhs) = L beta - rhs
        beta = beta - np.linalg.pinv(L) @ shift
    if method == "satterthwaite":
        from .satterthwaite import f_test, satterthwaite_parts

        test = f_test(satterthwaite_parts(res), L, beta)
    elif method == "kenward-roger":
        from .kenward_roger import kenward_roger_parts

        test = kenward_roger_parts(res).f_test(L, beta)
    else:
        test = _asymptotic_test(res, L, beta)
    return {**test, "estimate": L @ beta}


def anova(res, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Type III F tests of each fixed-effect term, as lmerTest's ``anova``.

    Parameters
    ----------
    res : LmmResult
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}
        Denominator df: lmerTest's Satterthwaite, pbkrtest's Kenward-Roger (scaled F with
        the adjusted covariance), or none (Wald chi-square / num_df, infinite den_df).

    Returns
    -------
    pandas.DataFrame
        Indexed by term: ``sum_sq, mean_sq, num_df, den_df, F, p_value`` (sums of squares on
        lmerTest's scale: mean_sq = F sigma^2).
    """
    method = ddf_method(ddf)
    rows = {}
    contrasts = type3_contrasts(res)
    if method == "satterthwaite":
        from .satterthwaite import f_test, satterthwaite_parts

        parts = satterthwaite_parts(res)
    elif method == "kenward-roger":
        from .kenward_roger import kenward_roger_parts

        kr = kenward_roger_parts(res)
    for label, L in contrasts.items():
        if method == "satterthwaite":
            test = f_test(parts, L, res.fixef.to_numpy(float))
        elif method == "kenward-roger":
            test = kr.f_test(L, res.fixef.to_numpy(float))
        else:
            test = _asymptotic_test(res, L)
        # lmerTest: Sum Sq from the unscaled F (Kenward-Roger's scale applies to F only)
        mean_sq = test.get("F_unscaled", test["F"]) * res.sigma**2
        rows[label] = {"sum_sq": mean_sq * test["num_df"], "mean_sq": mean_sq,
                       "num_df": test["num_df"], "den_df": test["den_df"], "F": test["F"],
                       "p_value": test["p_value"]}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["sum_sq", "mean_sq", "num_df", "den_df", "F",
                                           "p_value"])
