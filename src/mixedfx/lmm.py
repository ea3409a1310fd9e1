"""Linear mixed models: formula and data in, frozen :class:`LmmResult` out.

The steps, each owned by one module: parse (``formula``), materialize (``design``),
cross-products (``linalg.blocks``), blocked Cholesky and profiled deviance (``linalg.pls``),
optimize over theta (``optimize``), solve once at the optimum (``linalg.solution``) and
assemble the result (here).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from .design import ModelDesign, ReTerm, build_design
from .errors import ConvergenceWarning, DataError, SingularFitWarning
from .fixed import drop_aliased
from .formula import parse_formula
from .linalg.blocks import build_blocks
from .linalg.pls import PlsFactorizer, profiled_deviance
from .linalg.solution import PlsSolution, solve
from .optimize import OptSummary, minimize, polish_optimum
from .results import LmmResult
from .start import moment_start, moment_step

SINGULAR_TOL = 1e-4


def display_order(terms: tuple[ReTerm, ...]) -> list[ReTerm]:
    """lme4's order of random terms: decreasing number of levels, ties in formula order."""
    return sorted(terms, key=lambda t: -t.nlevels)


def engine_permutation(terms: list[ReTerm]) -> list[int]:
    """Engine order: the term with the most random effects first (it is eliminated
    analytically; the rest become dense), ties in display order."""
    return sorted(range(len(terms)), key=lambda k: -terms[k].nlevels * terms[k].dim)


class ThetaMap:
    """Map theta between display order (lme4's, in results) and engine order."""

    def __init__(self, terms: list[ReTerm], perm: list[int]) -> None:
        starts = np.cumsum([0] + [t.ntheta for t in terms])
        self.index = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in perm])

    def to_engine(self, theta: np.ndarray) -> np.ndarray:
        return theta[self.index]

    def to_display(self, theta_engine: np.ndarray) -> np.ndarray:
        out = np.empty_like(theta_engine)
        out[self.index] = theta_engine
        return out


def _rectify(theta: np.ndarray, terms: list[ReTerm]) -> np.ndarray:
    """Flip column signs of each factor so its diagonal is non-negative (for NEWUOA)."""
    from .design.reterm import lower_indices

    out, start = theta.copy(), 0
    for t in terms:
        rows, cols = lower_indices(t.dim)
        seg = out[start : start + t.ntheta]
        for c in range(t.dim):
            if seg[(rows == c) & (cols == c)][0] < 0:
                seg[cols == c] *= -1
        start += t.ntheta
    return out


def least_squares(X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients of y on X (full column rank).

    By the normal equations: the result only shifts the response within X's column space,
    so any error in it is harmless; zeros if the equations are singular.
    """
    XtW = X.T * weights
    try:
        return np.linalg.solve(XtW @ X, XtW @ y)
    except np.linalg.LinAlgError:
        return np.zeros(X.shape[1])


def lmm(formula: str, data: object, *, reml: bool = True, weights: object = None,
        offset: object = None, correlation: object = None, variance: object = None,
        optimizer: str = "newuoa", control: dict | None = None,
        data_name: str | None = None) -> LmmResult:
    """Fit a linear mixed model with lme4's formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Random terms
        ``(x | g)``, ``(x || g)``, ``(1 | a/b)``, ``(1 | a:b)``; any number of crossed terms.
    data : pandas.DataFrame or polars.DataFrame
        The data; never modified. Rows with missing values in used columns are dropped.
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    weights : str or array-like, optional
        Prior weights (a column name or one value per row), as lme4's ``weights=``: the
        residual variance of observation i is sigma^2 / w_i. Out of core: a column name.
    offset : str or array-like, optional
        Known term added to the linear predictor. Out of core: a column name.
    correlation : residual correlation structure, optional
        Within-group correlation of the residuals, e.g. ``mixedfx.AR1(group="Mare")``.
    variance : residual variance function, optional
        Heteroscedastic residuals, e.g. ``mixedfx.VarIdent("Sex")``.
    optimizer : {"newuoa", "bobyqa"}
        Derivative-free optimizer over theta. NEWUOA (unconstrained, signs rectified after)
        is the default: on the reference problems it needed fewer evaluations than BOBYQA
        and stopped closer to the optimum.
    control : dict, optional
        Optimizer settings passed to :func:`mixedfx.optimize.minimize`: ``maxeval``,
        ``ftol_rel``, ``ftol_abs``, ``xtol_abs``, ``initial_step`` (as lme4's ``optCtrl``);
        ``start``: ``"moments"`` (default) or ``"identity"``; ``polish``: True for a few
        Newton steps with finite-difference derivatives after the optimizer (see
        :mod:`mixedfx.polish`; default False), which pin the optimum down to the objective's
        rounding noise, so that fits of the same data in memory and out of core agree to
        1e-8; a dict passes settings to :func:`mixedfx.polish.polish`.
    data_name : str, optional
        Name of the data shown in the summary.

    Returns
    -------
    LmmResult

    Notes
    -----
    The profiled deviance is minimized over theta by penalized least squares (Bates et al.
    2015): beta and sigma are solved for at each theta; they are not optimizer parameters.
    """
    if not isinstance(data, pd.DataFrame):
        from .outofcore import is_outofcore, lmm_outofcore  # out of core: issue 7

        if is_outofcore(data):
            return lmm_outofcore(formula, data, reml=reml, weights=weights, offset=offset,
                                 optimizer=optimizer, control=control, data_name=data_name)
    if correlation is not None or variance is not None:
        from .residual import fit_structured

        return fit_structured(formula, data, reml=reml, weights=weights, offset=offset,
                              correlation=correlation, variance=variance, optimizer=optimizer,
                              control=control, data_name=data_name)
    model = LmmModel.from_formula(formula, data, reml=reml, weights=weights, offset=offset)
    return model.fit(optimizer=optimizer, control=control, data_name=data_name)


class LmmModel:
    """A linear mixed model ready to evaluate: design, terms and cross-product blocks.

    Holds no estimates; :meth:`fit` returns a frozen :class:`LmmResult` that keeps a
    reference to its model, so inference (profiles, refits, simulation) can evaluate the
    objective elsewhere. Treat it as immutable: ``with_response`` and ``with_reml`` return
    new models.

    Parameters
    ----------
    formula : str
        The formula as given.
    design : ModelDesign
        Numeric design (``design.X`` before dropping aliased columns).
    reml : bool
        REML criterion (True) or ML deviance (False).
    """

    def __init__(self, formula: str, design: ModelDesign, reml: bool) -> None:
        self.formula = formula
        self.design = design
        self.reml = reml
        self.X, self.fixed_names = drop_aliased(design.X, design.fixed_names, design.weights)
        self.dropped = tuple(n for n in design.fixed_names if n not in self.fixed_names)
        self.terms = display_order(design.terms)
        self.perm = engine_permutation(self.terms)
        self.tmap = ThetaMap(self.terms, self.perm)
        # The engine sees y minus its least-squares fit on X: the same model with beta shifted
        # by beta_ols, but y'y in the blocks is the residual sum of squares rather than the raw
        # sum, so the PLS residual r_yy^2 = y'y - ... loses far fewer digits to cancellation
        # (Pastes: objective noise 3e-10 -> 1e-13; the flat direction is resolved).
        y = design.y - design.offset
        self.beta_shift = least_squares(self.X, y, design.weights)
        self.blocks = build_blocks([self.terms[k] for k in self.perm], self.X,
                                   y - self.X @ self.beta_shift, design.weights)
        self.factorizer = PlsFactorizer(self.blocks)
        self.theta0 = np.concatenate([t.theta_initial() for t in self.terms])
        self.lower = np.concatenate([t.theta_lower_bounds() for t in self.terms])
        self._work = np.empty_like(self.blocks.A22)

    @classmethod
    def from_formula(cls, formula: str, data: object, *, reml: bool = True,
                     weights: object = None, offset: object = None) -> LmmModel:
        """Parse the formula and build the design (see :func:`lmm` for the arguments)."""
        parsed = parse_formula(formula)
        if not parsed.random:
            raise DataError("the formula has no random-effects term such as (1 | group); "
                            "for a fixed-effects-only model use ordinary least squares")
        return cls(parsed.text, build_design(parsed, data, weights, offset), reml)

    def objective(self, theta: np.ndarray) -> float:
        """REML criterion or ML deviance, profiled over beta and sigma, at ``theta``
        (display order, as ``LmmResult.theta``)."""
        f = self.factorizer.factor(self.tmap.to_engine(np.asarray(theta, float)), out=self._work)
        return profiled_deviance(f, self.blocks, self.reml)

    def solve(self, theta: np.ndarray) -> PlsSolution:
        """beta, conditional modes and covariances at ``theta`` (display order)."""
        sol = solve(self.factorizer, self.tmap.to_engine(np.asarray(theta, float)))
        return replace(sol, beta=sol.beta + self.beta_shift)

    def with_reml(self, reml: bool) -> LmmModel:
        """The same model with the other criterion (ML refit of a REML model, say)."""
        return LmmModel(self.formula, self.design, reml)

    def with_response(self, y: np.ndarray) -> LmmModel:
        """The same design with a new response (for simulation and bootstrap)."""
        design = replace(self.design, y=np.asarray(y, dtype=float))
        return LmmModel(self.formula, design, self.reml)

    def moment_theta(self) -> np.ndarray:
        """Moment-based starting theta (display order); see :mod:`mixedfx.start`."""
        return moment_start(self.terms, self.X, self.design.y - self.design.offset,
                            self.design.weights)

    def starting_point(self, settings: dict, theta0: np.ndarray | None) -> np.ndarray:
        """The optimizer's start: ``theta0`` if given, else by ``settings.pop("start")``,
        ``"moments"`` (default; sets a small ``initial_step``) or ``"identity"``."""
        how = settings.pop("start", "moments")
        if theta0 is not None:
            return np.asarray(theta0, float)
        if how == "moments":
            settings.setdefault("initial_step", moment_step(self.terms))
            return self.moment_theta()
        if how == "identity":
            return self.theta0
        raise ValueError(f"unknown start '{how}'; use 'moments' or 'identity'")

    def fit(self, *, optimizer: str = "newuoa", control: dict | None = None,
            data_name: str | None = None, theta0: np.ndarray | None = None) -> LmmResult:
        """Optimize theta and assemble the frozen result.

        ``control["start"]`` chooses the starting point when ``theta0`` is not given:
        ``"moments"`` (default; ANOVA-type estimates, then a small initial trust region) or
        ``"identity"`` (lme4's start, initial step 0.75).
        """
        opt, theta = self.optimize(optimizer, control, theta0)
        return _assemble(self, theta, self.solve(theta), opt, data_name)

    def optimize(self, optimizer: str, control: dict | None,
                 theta0: np.ndarray | None) -> tuple[OptSummary, np.ndarray]:
        """Run the optimizer (and the polish if ``control["polish"]``); the record and the
        optimum theta, column signs rectified after NEWUOA.

        The polish runs before rectification: for NEWUOA it is unconstrained, like the
        optimizer (the objective depends on theta only through Lambda Lambda', which is
        smooth across a zero diagonal and even in each column's sign); for BOBYQA it keeps
        the lower bounds, holding a variance at zero when the gradient pushes it outward.
        """
        settings = dict(control or {})
        polish = settings.pop("polish", False)
        start = self.starting_point(settings, theta0)
        opt = minimize(self.objective, start, self.lower, optimizer=optimizer, **settings)
        if polish:
            opt = polish_optimum(opt, self.objective,
                                 None if optimizer == "newuoa" else self.lower,
                                 **(polish if isinstance(polish, dict) else {}))
        theta = np.asarray(opt.final)
        if optimizer == "newuoa":
            theta = _rectify(theta, self.terms)
        return opt, theta


def _varcorr(terms: list[ReTerm], theta: np.ndarray, sigma: float) -> tuple[pd.DataFrame, list]:
    from .design.reterm import theta_to_factor

    rows, covs, start, seen = [], [], 0, {}
    for t in terms:
        T = theta_to_factor(theta[start : start + t.ntheta], t.dim)
        start += t.ntheta
        cov = sigma**2 * T @ T.T
        covs.append(cov)
        k = seen.get(t.group, 0)
        seen[t.group] = k + 1
        name = t.group if k == 0 else f"{t.group}.{k}"
        sd = np.sqrt(np.diag(cov))
        for a, col in enumerate(t.columns):
            rows.append((name, col, None, cov[a, a], sd[a]))
        for a in range(t.dim):
            for b in range(a + 1, t.dim):
                denom = sd[a] * sd[b]
                corr = cov[a, b] / denom if denom > 0 else np.nan
                rows.append((name, t.columns[a], t.columns[b], cov[a, b], corr))
    rows.append(("Residual", None, None, sigma**2, sigma))
    return varcorr_frame(rows), covs


def _labels(values) -> pd.Index:
    """An index of labels without pandas' string-dtype inference (slow for small frames);
    an Index (compact labels of millions of levels out of core) is kept as it is."""
    if isinstance(values, pd.Index):
        return values
    return pd.Index(np.asarray(values, dtype=object), dtype=object)


def varcorr_frame(rows: list[tuple]) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(m))`` layout from (group, term1, term2, vcov, sdcor) rows."""
    text = np.empty((len(rows), 3), dtype=object)  # one object block: no string inference
    text[:] = [r[:3] for r in rows]
    frame = pd.DataFrame(text, columns=_labels(["group", "term1", "term2"]), dtype=object)
    frame["vcov"] = np.array([r[3] for r in rows], dtype=float)
    frame["sdcor"] = np.array([r[4] for r in rows], dtype=float)
    return frame


def _ranef(terms: list[ReTerm], perm: list[int], sol: PlsSolution, sigma: float):
    """Conditional modes, sds and covariances by group. Consumes ``sol``: its arrays become
    the frames' data and its conditional covariances are scaled by sigma^2 in place (no
    copies: out of core they have one row per user, tens of millions)."""
    by_group: dict[str, list] = {}
    for pos, k in enumerate(perm):
        t = terms[k]
        index = _labels(t.levels).rename(t.group)
        mode = pd.DataFrame(sol.b[pos], index=index, columns=_labels(t.columns), copy=False)
        cov = sol.cond_cov[pos]
        cov *= sigma**2
        sd = pd.DataFrame(np.sqrt(np.einsum("jaa->ja", cov)), index=mode.index,
                          columns=mode.columns, copy=False)
        by_group.setdefault(t.group, []).append((k, mode, sd, cov))
    ranef, ranef_sd, ranef_cov = {}, {}, {}
    for g, items in sorted(by_group.items(), key=lambda kv: min(i[0] for i in kv[1])):
        items.sort(key=lambda i: i[0])
        if len(items) == 1:
            ranef[g], ranef_sd[g] = items[0][1], items[0][2]
        else:
            ranef[g] = pd.concat([i[1] for i in items], axis=1)
            ranef_sd[g] = pd.concat([i[2] for i in items], axis=1)
        if len(items) == 1:
            ranef_cov[g] = items[0][3]
        else:  # separate terms of one factor (x || g): block-diagonal covariance
            dims = [i[3].shape[1] for i in items]
            full = np.zeros((items[0][3].shape[0], sum(dims), sum(dims)))
            s = 0
            for i, d in zip(items, dims, strict=False):
                full[:, s : s + d, s : s + d] = i[3]
                s += d
            ranef_cov[g] = full
    return ranef, ranef_sd, ranef_cov


def _is_singular(theta: np.ndarray, lower: np.ndarray) -> bool:
    on_diag = np.isfinite(lower)
    return bool(np.any(np.abs(theta[on_diag]) < SINGULAR_TOL))


def _assemble(model: LmmModel, theta: np.ndarray, sol: PlsSolution, opt,
              data_name: str | None) -> LmmResult:
    design, X, terms, perm, reml = model.design, model.X, model.terms, model.perm, model.reml
    sum_log_w = model.blocks.sum_log_weights
    n, p = len(design.y), X.shape[1]
    dof = n - p if reml else n
    sigma = float(np.sqrt(sol.pwrss / dof))
    objective = float(opt.fmin)
    ml_dev = float(sol.logdet_L + n * np.log(2 * np.pi * sigma**2) + sol.pwrss / sigma**2
                   - sum_log_w)
    npar = p + len(theta) + 1
    loglik = -objective / 2
    vcov = sigma**2 * sol.RX_inv_cov
    names = _labels(model.fixed_names)
    varcorr, _ = _varcorr(terms, theta, sigma)
    ranef, ranef_sd, ranef_cov = _ranef(terms, perm, sol, sigma)
    fitted = X @ sol.beta + design.offset
    for pos, k in enumerate(perm):
        t = terms[k]
        fitted = fitted + np.einsum("ij,ij->i", t.Z, sol.b[pos][t.codes])
    residuals = design.y - fitted
    singular = _is_singular(theta, model.lower)
    if not opt.converged:
        warnings.warn(f"the optimizer did not converge (status {opt.status} after {opt.feval} "
                      "evaluations): the estimates may not be the optimum; check the model "
                      "or rescale covariates", ConvergenceWarning, stacklevel=3)
    if singular:
        warnings.warn("boundary (singular) fit: a variance component is zero or a "
                      "correlation is +-1; see the varcorr table", SingularFitWarning,
                      stacklevel=3)
    return LmmResult(
        formula=model.formula, reml=reml, fixef=pd.Series(sol.beta, index=names, name="estimate"),
        se=pd.Series(np.sqrt(np.diag(vcov)), index=names, name="std_error"),
        vcov=pd.DataFrame(vcov, index=names, columns=names), varcorr=varcorr, sigma=sigma,
        theta=theta, loglik=loglik, objective=objective, deviance=objective if not reml
        else ml_dev, aic=-2 * loglik + 2 * npar, bic=-2 * loglik + np.log(n) * npar, npar=npar,
        nobs=n, n_dropped=design.n_dropped, ngroups={t.group: t.nlevels for t in terms},
        ranef=ranef, ranef_sd=ranef_sd, ranef_cov=ranef_cov, fitted=fitted,
        residuals=residuals, scaled_residuals=residuals * np.sqrt(design.weights) / sigma,
        converged=opt.converged, singular=singular, optsum=opt, dropped_columns=model.dropped,
        data_name=data_name, weights_used=not np.all(design.weights == 1), model=model)
