"""lme4-style text summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _fmt_table(rows: list[list[str]], align_left: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if i in align_left else c.rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=False))]
        out.append(" ".join(cells).rstrip())
    return out


def _sig(x: float, digits: int = 4) -> str:
    """Format like R's signif-based printing: ``digits`` significant digits."""
    if not np.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) >= 1e-4 or x == 0 else f"{x:.{digits - 1}e}"


def _column(values: np.ndarray, digits: int) -> list[str]:
    """Format a column with a common number of decimals (as R's format())."""
    finite = np.abs(values[np.isfinite(values)])
    big = finite.max() if finite.size else 0.0
    lead = int(np.floor(np.log10(big))) + 1 if big > 0 else 1
    decimals = max(digits - max(lead, 1), 0)
    return [f"{v:.{decimals}f}" for v in values]


def random_effects_table(varcorr: pd.DataFrame, show_variance: bool = True) -> list[str]:
    """The 'Random effects:' table with Variance, Std.Dev. and correlations."""
    groups: list[tuple[str, list[str], np.ndarray, np.ndarray]] = []
    for name, sub in varcorr.groupby("group", sort=False):
        var_rows = sub[sub.term2.isna()]
        terms = [t if t is not None and not pd.isna(t) else "" for t in var_rows.term1]
        corr = np.eye(len(terms))
        for _, r in sub[sub.term2.notna()].iterrows():
            a, b = terms.index(r.term1), terms.index(r.term2)
            corr[a, b] = corr[b, a] = r.sdcor
        groups.append((name, terms, var_rows.vcov.to_numpy(), corr))
    variances = np.concatenate([g[2] for g in groups])
    var_s = _column(variances, 5)
    sd_s = _column(np.sqrt(variances), 5)
    header = ["Groups", "Name"] + (["Variance"] if show_variance else []) + ["Std.Dev."]
    maxdim = max(len(g[1]) for g in groups)
    if maxdim > 1:
        header += ["Corr"] + [""] * (maxdim - 2)
    rows, k = [header], 0
    for name, terms, _, corr in groups:
        for a, term in enumerate(terms):
            row = [name if a == 0 else "", term]
            row += ([var_s[k]] if show_variance else []) + [sd_s[k]]
            if maxdim > 1:
                cells = [f"{corr[a, b]:.2f}" for b in range(a)]
                row += cells + [""] * (maxdim - 1 - len(cells))
            rows.append(row)
            k += 1
    return [" " + line for line in _fmt_table(rows, {0, 1})]


def fixed_effects_table(est: pd.Series, se: pd.Series, stat_name: str = "t value",
                        extra: pd.DataFrame | None = None,
                        df: np.ndarray | None = None) -> list[str]:
    """The 'Fixed effects:' table (estimates, standard errors, df when given, test
    statistics, extra columns)."""
    stat = est / se
    cols = [_column(est.to_numpy(), 5), _column(se.to_numpy(), 4)]
    header = ["", "Estimate", "Std. Error"]
    if df is not None:
        cols.append([f"{v:.3f}" if np.isfinite(v) else "Inf" for v in df])
        header.append("df")
    cols.append(_column(stat.to_numpy(), 4))
    header.append(stat_name)
    if extra is not None:
        for c in extra.columns:
            header.append(c)
            cols.append([v if isinstance(v, str) else _sig(v, 4)
                         for v in extra[c].to_numpy()])
    rows = [header] + [[name] + [c[i] for c in cols] for i, name in enumerate(est.index)]
    return _fmt_table(rows, {0})


def correlation_table(vcov: pd.DataFrame) -> list[str]:
    """The 'Correlation of Fixed Effects:' lower triangle with abbreviated names."""
    names = list(vcov.index)
    if len(names) < 2:
        return []
    sd = np.sqrt(np.diag(vcov.to_numpy()))
    corr = vcov.to_numpy() / np.outer(sd, sd)
    abbrev = [_abbreviate(n) for n in names[:-1]]
    rows = [[""] + abbrev]
    for i in range(1, len(names)):
        rows.append([names[i]] + [f"{corr[i, j]:.3f}" for j in range(i)]
                    + [""] * (len(names) - 1 - i))
    return _fmt_table(rows, {0})


def _abbreviate(name: str, minlength: int = 6) -> str:
    """R's abbreviate(): drop lower-case vowels from the end, then lower-case letters."""
    if len(name) <= minlength:
        return name
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def scaled_residuals_table(res: np.ndarray) -> list[str]:
    """Five-number summary of the scaled residuals."""
    q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1.0])
    rows = [["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]]
    return _fmt_table(rows, set())


def render_lmm(res) -> str:
    """Render an :class:`~mixedfx.results.LmmResult` as lme4's ``summary()`` does."""
    tests, note = _satterthwaite_tests(res)
    method = ". t-tests use Satterthwaite's method" if tests is not None else ""
    lines = [f"Linear mixed model fit by {'REML' if res.reml else 'maximum likelihood'}"
             f"{method}", f"Formula: {res.formula}"]
    if res.data_name:
        lines.append(f"   Data: {res.data_name}")
    if res.weights_used:
        lines.append("Weights: prior weights")
    lines.append("")
    if res.reml:
        lines.append(f"REML criterion at convergence: {res.objective:.1f}")
    else:
        rows = [["AIC", "BIC", "logLik", "deviance", "df.resid"],
                [f"{res.aic:.1f}", f"{res.bic:.1f}", f"{res.loglik:.1f}",
                 f"{res.objective:.1f}", str(res.df_residual)]]
        lines += _fmt_table(rows, set())
    if res.scaled_residuals is not None:
        lines += ["", "Scaled residuals: "] + scaled_residuals_table(res.scaled_residuals)
    else:  # out-of-core fit (issue 7): residuals are written on request, not held
        lines += ["", "Scaled residuals: not held (out-of-core fit; res.write_fitted(path))"]
    lines += ["", "Random effects:"] + random_effects_table(res.varcorr)
    groups = ", ".join(f"{g}, {n}" for g, n in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    if res.n_dropped:
        lines.append(f"({res.n_dropped} observations deleted due to missingness)")
    if res.residual_params:  # residual correlation / variance structures (nlme's layout)
        from .residual.display import structure_lines

        lines += [""] + structure_lines(res)
    if tests is None:
        lines += ["", "Fixed effects:"] + fixed_effects_table(res.fixef, res.se)
    else:
        pcol = pd.DataFrame({"Pr(>|t|)": [format_pvalue(v) for v in tests["p_value"]],
                             "": [significance_stars(v) for v in tests["p_value"]]})
        lines += ["", "Fixed effects:"] + fixed_effects_table(
            res.fixef, res.se, extra=pcol, df=tests["df"].to_numpy())
        lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    if note:
        lines.append(note)
    corr = correlation_table(res.vcov)
    if corr:
        lines += ["", "Correlation of Fixed Effects:"] + corr
    notes = []
    if res.dropped_columns:
        notes.append(f"fixed-effect model matrix is rank deficient so dropping "
                     f"{len(res.dropped_columns)} columns: {', '.join(res.dropped_columns)}")
    if res.singular:
        notes.append("boundary (singular) fit: see the variance components above")
    if not res.converged:
        notes.append(f"optimizer did not converge: {res.optsum.status}")
    if notes:
        lines += [""] + [f"NOTE: {n}" for n in notes]
    return "\n".join(lines)


SATTERTHWAITE_MAX_ROWS = 100_000  # above this the summary does not compute df (seconds)


def _satterthwaite_tests(res) -> tuple[pd.DataFrame | None, str]:
    """Satterthwaite t tests for the summary (lmerTest's layout), or None and why not."""
    model = getattr(res, "model", None)
    if res.residual_params or hasattr(model, "structures"):
        return None, ("(t tests without df: Satterthwaite and Kenward-Roger df are not "
                      "available with residual structures; res.coef_table('asymptotic') "
                      "gives z-test p-values)")
    if not hasattr(model, "factorizer"):
        return None, ""
    if res.nobs > SATTERTHWAITE_MAX_ROWS:
        return None, ("(t tests without df for a large model: res.coef_table() gives "
                      "Satterthwaite df and p-values)")
    try:
        return res.coef_table("satterthwaite"), ""
    except Exception as exc:  # noqa: BLE001 - the summary must not fail on df
        return None, f"(Satterthwaite df not available: {exc})"


def format_pvalue(p: float) -> str:
    """R's format.pval with 3 significant digits and its 2e-16 floor."""
    if not np.isfinite(p):
        return "NA"
    if p < 2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def significance_stars(p: float) -> str:
    """R's significance codes."""
    if not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""
