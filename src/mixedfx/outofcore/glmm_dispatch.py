"""``mixedfx.glmm`` on a Parquet path or glob, a DuckDB relation or a Dask DataFrame.

The Laplace fit (and its nAGQ = 0 variant) is :func:`mixedfx.glmm.laplace.fit_laplace`,
driven by :class:`~mixedfx.outofcore.glmm_engine.OutOfCorePirls`: the same two stages, the
same optimizer settings and the same finite-difference Hessian, each PIRLS step one pass
over the rows.
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pandas as pd

from ..design import ReTerm
from ..errors import DataError, MissingDataWarning, SingularFitWarning
from ..formula import parse_formula
from ..glmm.laplace import LaplaceFit, fit_laplace
from ..glmm.result import GlmmResult
from ..linalg.solution import solve
from ..lmm import ThetaMap, _labels, _varcorr, display_order, engine_permutation
from .dispatch import _source
from .glmm_engine import OocGlmmModel, OutOfCorePirls, glm_beta_rows
from .glmm_rows import Plan, Rows, RowSpec, merge_structure, structure
from .labels import level_labels
from .model import AggregatedModel
from .terms import fixed_columns, is_categorical, random_columns, variables_of

_CBIND = re.compile(r"^cbind\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*,\s*(.+?)\s*\)$")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
SINGULAR_TOL = 1e-4


def _response_spec(response: str, weights, offset) -> tuple[RowSpec, list[str]]:
    """The response, weights and offset as columns; DataError for anything else."""
    for what, v in (("weights", weights), ("offset", offset)):
        if v is not None and not (isinstance(v, str) and _NAME.match(v)):
            raise DataError(f"out of core, {what}= must name a column of the data (got "
                            f"{type(v).__name__}); add the values as a column")
    extra = [c for c in (weights, offset) if c is not None]
    m = _CBIND.match(response.replace(" ", ""))
    if m:
        succ, rest = m.group(1), m.group(2)
        if _NAME.match(rest):  # cbind(s, f)
            return (RowSpec(response, successes=succ, failures=rest, weights=weights,
                            offset=offset), [succ, rest] + extra)
        mm = re.match(r"^([A-Za-z_.][A-Za-z0-9_.]*)-([A-Za-z_.][A-Za-z0-9_.]*)$", rest)
        if mm and mm.group(2) == succ:  # cbind(s, n - s)
            return (RowSpec(response, successes=succ, trials=mm.group(1), weights=weights,
                            offset=offset), [succ, mm.group(1)] + extra)
        raise DataError(f"response '{response}' is not supported out of core: use "
                        "cbind(successes, failures) or cbind(successes, trials - successes) "
                        "with column names")
    if not _NAME.match(response):
        raise DataError(f"response '{response}' is not supported out of core: use a column "
                        "name or cbind(...) (compute transformations in the data first)")
    return RowSpec(response, weights=weights, offset=offset), [response] + extra


def glmm_outofcore(formula: str, data: object, family="binomial", *, link: str | None = None,
                   method: str = "laplace", n_agq: int = 1, weights=None, offset=None,
                   control: dict | None = None, data_name: str | None = None,
                   threads: int | None = None, memory_limit: str | None = None,
                   chunk_rows: int | None = None, timings: dict | None = None) -> GlmmResult:
    """Fit a GLMM whose PIRLS steps are passes over a Parquet/DuckDB/Dask source.

    Parameters are those of :func:`mixedfx.glmm` (``weights``/``offset`` as column names);
    ``threads``, ``memory_limit`` set DuckDB's limits for Parquet input; ``chunk_rows`` the
    rows per DuckDB batch; ``timings``, if a dict, receives ``setup_s``, ``fit_s`` and
    ``passes``.
    """
    if method == "pql":  # working LMMs on aggregated blocks (MASS::glmmPQL's iterations)
        from .pql_rows import pql_outofcore

        return pql_outofcore(formula, data, family, link=link, weights=weights, offset=offset,
                             control=control, data_name=data_name, threads=threads,
                             memory_limit=memory_limit, chunk_rows=chunk_rows,
                             timings=timings)
    t0 = time.perf_counter()
    model, pair_keys = build_rows_model(formula, data, family, link=link, method=method,
                                        n_agq=n_agq, weights=weights, offset=offset,
                                        threads=threads, memory_limit=memory_limit,
                                        chunk_rows=chunk_rows)
    t1 = time.perf_counter()
    fit = fit_laplace_rows(model, pair_keys, n_agq=int(n_agq), control=control)
    res = assemble_rows(model, fit, int(n_agq), data_name)
    if timings is not None:
        timings.update(setup_s=t1 - t0, fit_s=time.perf_counter() - t1,
                       passes=model.rows.passes)
    return res


def build_rows_model(formula: str, data: object, family="binomial", *, link=None,
                     method: str = "laplace", n_agq: int = 1, weights=None, offset=None,
                     threads=None, memory_limit=None, chunk_rows=None
                     ) -> tuple[OocGlmmModel, dict]:
    """The out-of-core model after its structure pass, and the distinct key pairs of the
    two-factor sums; DataError for what is not supported out of core."""
    from ..families import family_key, get_family

    if isinstance(family, str) and family_key(family) == "negative.binomial":
        raise DataError("family='negbinomial' is not supported out of core; binomial and "
                        "Poisson families are, or fit in memory")
    family = get_family(family, link)
    if method != "laplace":
        raise DataError(f"method='{method}' is not supported out of core; use "
                        "method='laplace' (n_agq=1, or n_agq=0 for the faster variant) or "
                        "method='pql', or fit in memory")
    if int(n_agq) not in (0, 1):
        raise DataError(f"out of core, method='laplace' takes n_agq 0 or 1, not {n_agq}")
    if not family.fixed_dispersion:
        raise DataError(f"the {family.name} family is not supported out of core (estimated "
                        "dispersion); binomial and Poisson families are, or fit in memory")
    parsed = parse_formula(formula)
    if not parsed.random:
        raise DataError("the formula has no random-effects term such as (1 | group); for a "
                        "model without random effects fit a GLM")
    spec, resp_cols = _response_spec(parsed.response, weights, offset)
    used = [c for c in resp_cols] + sorted(variables_of(parsed.fixed))
    for term in parsed.random:
        used += sorted(variables_of(term.expr)) + list(term.factors)
    used = list(dict.fromkeys(used))
    source, types = _source(data, used, threads, memory_limit)
    for c in resp_cols:
        if is_categorical(types[c]):
            raise DataError(f"column '{c}' must be numeric out of core (a 0/1 response; "
                            "recode a factor response first)")
    n, total = source.counts()
    if total > n:
        warnings.warn(f"{total - n} row(s) with missing values in the model's columns were "
                      "dropped", MissingDataWarning, stacklevel=3)
    levels = {c: [v for (v,) in source.levels((c,))] for c in used
              if is_categorical(types[c]) and c in variables_of(parsed.fixed)}
    xcols = fixed_columns(parsed.fixed, types, levels)
    terms, zcols, codes = [], [], []
    for k, term in enumerate(parsed.random):
        cols = random_columns(term.expr, types, term.group)
        code = f"g{k}"
        labels = source.add_group(code, term.factors)  # numbers the levels, returns them
        names = level_labels(labels)
        if len(names) < 2 or len(names) >= n:
            raise DataError(f"grouping factor '{term.group}' has {len(names)} levels for {n} "
                            "observations; it needs at least 2 and fewer than the observations")
        terms.append(ReTerm(group=term.group, columns=tuple(c.name for c in cols),
                            levels=names, codes=np.zeros(0, dtype=np.int64),
                            Z=np.zeros((0, len(cols)))))
        zcols.append(cols)
        codes.append(code)
    order = AggregatedModel.order(terms)
    bases = list(dict.fromkeys(list(xcols) + [c for k in order for c in zcols[k]]))
    plan = Plan(family=family, bases=tuple(bases),
                xcols=tuple(bases.index(c) for c in xcols),
                zcols=tuple(tuple(bases.index(c) for c in zcols[k]) for k in order),
                codes=tuple(codes[k] for k in order),
                index={c: f"c{i}" for i, c in enumerate(bases)})
    rows = Rows(source, plan, spec, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    nlev = {codes[k]: terms[k].nlevels for k in order}
    key_sets = [(plan.codes[0], c) for c in plan.codes[1:]]
    key_sets += [(plan.codes[i], plan.codes[j]) for i in range(1, len(plan.codes))
                 for j in range(i + 1, len(plan.codes))]
    st = rows.reduce(structure, merge_structure, plan, key_sets, nlev,
                     f"response '{parsed.response}'")
    rows.index_pairs(st["pairs"], nlev)
    disp = display_order(tuple(terms))
    perm = engine_permutation(disp)
    model = OocGlmmModel(formula=parsed.text, family=family,
                         fixed_names=tuple(c.name for c in xcols), terms=disp, perm=perm,
                         tmap=ThetaMap(disp, perm), xcols=tuple(xcols),
                         zcols=tuple(tuple(zcols[k]) for k in order), codes=plan.codes,
                         nobs=int(st["n"]), n_dropped=total - n, constant=st["const"],
                         rows=rows)
    if [t.group for t in model.engine_terms] != [terms[k].group for k in order]:
        raise DataError("internal: engine order of the out-of-core terms differs")
    return model, st["pairs"]


def fit_laplace_rows(model: OocGlmmModel, pair_keys: dict, *, n_agq: int = 1,
                     control: dict | None = None) -> LaplaceFit:
    """:func:`mixedfx.glmm.laplace.fit_laplace` (same stages, settings and Hessian) with
    out-of-core engines and the GLM start computed by passes over the rows."""
    return fit_laplace(model, n_agq=n_agq, control=control, beta0=glm_beta_rows(model),
                       engine_factory=lambda m: OutOfCorePirls(m, False, pair_keys),
                       engine0_factory=lambda m: OutOfCorePirls(m, True, pair_keys))


def assemble_rows(model: OocGlmmModel, fit: LaplaceFit, n_agq: int,
                  data_name: str | None) -> GlmmResult:
    """The frozen result; per-row fitted values, linear predictor and residuals are not
    held (``None``)."""
    fam = model.family
    n, p = model.nobs, len(model.fixed_names)
    engine = fit.engine
    theta_e = model.tmap.to_engine(fit.theta)
    state = engine.run(theta_e, fit.beta, fit.state.u)
    sol = solve(engine.fz, theta_e)
    factors = engine.factors(theta_e)
    by_group: dict[str, list] = {}
    for pos, k in enumerate(model.perm):
        t = model.terms[k]
        index = _labels(t.levels).rename(t.group)
        mode = pd.DataFrame(state.u[pos] @ factors[pos].T, index=index,
                            columns=_labels(t.columns))
        cov = sol.cond_cov[pos]
        sd = pd.DataFrame(np.sqrt(np.einsum("jaa->ja", cov)), index=index,
                          columns=_labels(t.columns))
        by_group.setdefault(t.group, []).append((k, mode, sd, cov))
    ranef, ranef_sd, ranef_cov = {}, {}, {}
    for g, items in sorted(by_group.items(), key=lambda kv: min(i[0] for i in kv[1])):
        items.sort(key=lambda i: i[0])
        ranef[g] = pd.concat([i[1] for i in items], axis=1)
        ranef_sd[g] = pd.concat([i[2] for i in items], axis=1)
        dims = [i[3].shape[1] for i in items]
        full = np.zeros((items[0][3].shape[0], sum(dims), sum(dims)))
        s = 0
        for i, d in zip(items, dims, strict=True):
            full[:, s : s + d, s : s + d] = i[3]
            s += d
        ranef_cov[g] = full
    varcorr, _ = _varcorr(model.terms, fit.theta, 1.0)
    varcorr = varcorr[varcorr.group != "Residual"].reset_index(drop=True)
    npar = p + len(fit.theta)
    loglik = -fit.deviance / 2
    names = _labels(model.fixed_names)
    vcov = np.asarray(fit.vcov)
    lower = model.theta_lower
    singular = bool(np.any(np.abs(fit.theta[np.isfinite(lower)]) < SINGULAR_TOL))
    opt = fit.opt if fit.opt is not None else fit.opt0
    if singular:
        warnings.warn("boundary (singular) fit: a variance component is zero or a "
                      "correlation is +-1; see the varcorr table", SingularFitWarning,
                      stacklevel=3)
    return GlmmResult(
        formula=model.formula, family=fam.name, link=fam.link.name, method="laplace",
        n_agq=n_agq, fixef=pd.Series(fit.beta, index=names, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=names, name="std_error"),
        vcov=pd.DataFrame(vcov, index=names, columns=names), varcorr=varcorr,
        theta=np.asarray(fit.theta, float), loglik=loglik, deviance=float(fit.deviance),
        conditional_deviance=engine.conditional_deviance(state),
        aic=-2 * loglik + 2 * npar, bic=-2 * loglik + np.log(n) * npar, npar=npar, nobs=n,
        n_dropped=model.n_dropped, ngroups={t.group: t.nlevels for t in model.terms},
        ranef=ranef, ranef_sd=ranef_sd, ranef_cov=ranef_cov, fitted=None,
        linear_predictor=None, residuals=None, dispersion=1.0,
        converged=bool(opt.converged), singular=singular, optsum=opt,
        optsum_init=fit.opt0 if fit.opt is not None else None, vcov_method=fit.vcov_method,
        dropped_columns=(), data_name=data_name, model=model, family_object=fam)
