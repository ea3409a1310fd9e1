"""Laplace fit of a GLMM (lme4's ``glmer`` with nAGQ = 0 or 1).

1. nAGQ = 0 stage: theta is optimized with beta solved inside PIRLS (fast, approximate).
2. nAGQ = 1 stage (unless ``n_agq=0``): BOBYQA over (theta, beta) from the first stage's
   estimates, PIRLS for u only at each point; beta is searched in coordinates whitened by its
   stage-1 covariance (the deviance is the same function; only the optimizer's coordinates
   change).
3. Standard errors from a central finite-difference Hessian (step 1e-4, lme4's ``deriv12``)
   of the deviance in (theta, beta): vcov(beta) = the beta block of 2 H^-1, as lme4 does
   by default for fits with fewer than 10,000 observations; otherwise (or when the Hessian
   is not positive definite) from the penalized system at the optimum.
4. With ``control={"polish": True}``: Newton steps with finite-difference derivatives after
   the last stage (:mod:`mixedfx.polish`), and the Hessian of 3 by central differences at
   step 5e-2 in the whitened coordinates, so that the estimates and standard errors are
   fixed by the deviance to its rounding noise (in memory and out of core agree to 1e-8).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning
from ..optimize import OptSummary, minimize, polish_optimum
from ..polish import central_hessian
from .model import GlmmModel
from .pirls import PirlsEngine, PirlsError, PirlsState

HESSIAN_NOBS_MAX = 10_000
HESSIAN_STEP = 1e-4
# With polish, the Hessian for standard errors is central (polish.central_hessian, O(h^2)),
# in the optimizer's coordinates (units of standard errors): at 5e-2 its rounding noise
# (1e-12 / h^2) leaves standard errors reproducible to ~1e-9 (in memory vs out of core; ~1e-8
# at 1e-2) and its truncation moves them by ~1e-6 relative (BERN and slope models of
# tests/test_outofcore_glmm.py, against four-point central differences at 1e-2), less than
# the forward differences' O(h) error at 1e-4 (1e-5 to 3e-5 there)
POLISH_HESSIAN_STEP = 5e-2
# The polish works in the optimizer's coordinates, units of standard errors, with its default
# fourth-order gradient at step 1e-3 (BERN and slope models: within 4e-10 of the polish at
# 3e-3, BOBYQA's stop 3e-7 to 7e-7 away; second-order at 1e-3 would be 1e-8 off), and two
# Newton steps reach the noise from BOBYQA's 1e-4 stop (a third only moves within it)
POLISH = {"step": 1e-3, "max_iter": 2}
STAGE0_UTOL = 1e-5


@dataclass(frozen=True, eq=False)
class LaplaceFit:
    """Outcome of the Laplace optimization.

    Attributes
    ----------
    theta, beta : numpy.ndarray
        Estimates (theta in display order).
    state : PirlsState
        Conditional modes at the estimates.
    deviance : float
        Laplace approximation to -2 log L at the estimates (all constants).
    vcov : numpy.ndarray
        Covariance of beta.
    vcov_method : str
        ``"hessian"`` or ``"pls"``.
    opt0, opt : OptSummary or None
        The nAGQ = 0 and nAGQ = 1 optimizations (``opt`` None for n_agq = 0).
    engine : PirlsEngine
        The u-only PIRLS engine (nAGQ = 1), or the beta-inside one for n_agq = 0.
    hessian : numpy.ndarray or None
        Finite-difference Hessian of the deviance in (theta, beta).
    """

    theta: np.ndarray
    beta: np.ndarray
    state: PirlsState
    deviance: float
    vcov: np.ndarray
    vcov_method: str
    opt0: OptSummary
    opt: OptSummary | None
    engine: PirlsEngine
    hessian: np.ndarray | None


def glm_beta(model: GlmmModel, maxit: int = 25, tol: float = 1e-8) -> np.ndarray:
    """Fixed effects of the GLM without random effects (IRLS from the family's mustart)."""
    fam, y, a, X, off = model.family, model.y, model.prior, model.X, model.offset
    eta = fam.linkfun(fam.mustart(y, a))
    beta = np.linalg.lstsq(X, eta - off, rcond=None)[0]
    dev_old = np.inf
    for _ in range(maxit):
        mu = fam.linkinv(eta)
        d = fam.mu_eta(eta)
        w = a * d * d / fam.variance(mu)
        z = eta - off + (y - mu) / d
        XtW = X.T * w
        try:
            beta = np.linalg.solve(XtW @ X, XtW @ z)
        except np.linalg.LinAlgError:
            break
        eta = off + X @ beta
        dev = float(np.sum(fam.dev_resids(y, fam.linkinv(eta), a)))
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta


def _start_hint(model: GlmmModel, beta: np.ndarray) -> str:
    """Where the default start (the fixed-effects GLM fit) leaves the family's range, and
    what to try."""
    fam = model.family
    with np.errstate(all="ignore"):
        mu = fam.linkinv(model.offset + model.X @ beta)
        bad = ~np.isfinite(fam.dev_resids(model.y, mu, model.prior))
    where = (f" give means outside the {fam.name} family's range at {int(bad.sum())} of "
             f"{bad.size} rows" if bad.any() else " leave PIRLS no finite deviance")
    hint = f"The starting values (the GLM fit of the fixed effects alone){where}: the " \
           f"{fam.link.name} link may not suit these data"
    if fam.link.name != fam.default_link:
        hint += f"; try the {fam.name} family's default link '{fam.default_link}'"
    return hint


class _Objective:
    """The deviance as a function of the optimizer's parameters, warm-starting PIRLS from
    the last modes; a PIRLS failure gives +inf (the optimizer backs off) and is counted."""

    def __init__(self, engine: PirlsEngine, model: GlmmModel, beta_free: bool,
                 beta0: np.ndarray, beta_scale: np.ndarray | None = None,
                 theta_origin: np.ndarray | None = None,
                 theta_scale: np.ndarray | None = None) -> None:
        self.engine, self.model = engine, model
        self.beta_free, self.beta0 = beta_free, np.asarray(beta0, float)
        self.scale = beta_scale
        self.theta_origin, self.theta_scale = theta_origin, theta_scale
        self.ntheta = len(model.theta_lower)
        self.u = None
        self.beta_last = self.beta0.copy()
        self.failures = 0
        self.last_error: PirlsError | None = None
        self.utol: float | None = None  # PIRLS step tolerance (None: the engine's default)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.asarray(x[: self.ntheta], float)
        if self.theta_scale is not None:
            theta = self.theta_origin + self.theta_scale * theta
        if self.beta_free:
            return theta, self.beta_last
        delta = np.asarray(x[self.ntheta :], float)
        beta = self.beta0 + (self.scale @ delta if self.scale is not None else delta)
        return theta, beta

    def state(self, x: np.ndarray) -> PirlsState:
        theta, beta = self.split(x)
        kw = {} if self.utol is None else {"utol": self.utol, "refresh": False}
        st = self.engine.run(self.model.tmap.to_engine(theta), beta, self.u, **kw)
        self.u = st.u
        if self.beta_free:
            self.beta_last = st.beta
        return st

    def __call__(self, x: np.ndarray) -> float:
        try:
            st = self.state(x)
        except PirlsError as exc:
            self.failures += 1
            self.last_error = exc
            self.u = None
            return np.inf
        return self.engine.laplace(st)


def _pls_vcov(engine: PirlsEngine) -> np.ndarray:
    """(R_X'R_X)^-1 from the last factor of a beta-inside engine."""
    b = engine.fz.blocks
    L = np.tril(engine._work)
    mr, p = b.m_random, b.p
    LX = L[mr : mr + p, mr : mr + p]
    inv = np.linalg.inv(LX)
    return inv.T @ inv


def theta_scale(model: GlmmModel, theta: np.ndarray) -> np.ndarray:
    """Rough standard error of each theta entry: max(|theta|, 0.05) / sqrt(2 L) for a term
    with L levels, within [1e-3, 1]."""
    levels = np.concatenate([np.full(t.ntheta, t.nlevels) for t in model.terms])
    return np.clip(np.maximum(np.abs(theta), 0.05) / np.sqrt(2 * levels), 1e-3, 1.0)


def _whitening(vcov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a covariance (its diagonal's square root if not positive
    definite)."""
    try:
        return np.linalg.cholesky(vcov)
    except np.linalg.LinAlgError:
        return np.diag(np.sqrt(np.maximum(np.diag(vcov), 1e-12)))


def hessian(fun, x: np.ndarray, step: float = HESSIAN_STEP, modes=None) -> np.ndarray:
    """Finite-difference Hessian: 1 + n(n + 3)/2 evaluations.

    Diagonal: central, (f(x+h_i) - 2 f(x) + f(x-h_i)) / h^2 (error O(h^2)), as lme4's
    ``deriv12``. Off-diagonal: forward, (f(x+h_i+h_j) - f(x+h_i) - f(x+h_j) + f(x)) / h^2,
    one evaluation per pair instead of deriv12's four; its error, h (f_iij + f_ijj) / 2, is
    about 1e-4 relative at h = 1e-4 (VerbAgg and cbpp: standard errors within 1e-4 relative of
    the central formula's), far below the 1% within which lme4's own
    finite-difference standard errors agree. On VerbAgg (8 parameters): 45 evaluations, not 73.

    Parameters
    ----------
    fun : callable
    x : numpy.ndarray
    step : float
    modes : (get, set) pair of callables, optional
        Read and set the warm start of the inner PIRLS (a tuple of arrays). Given, each
        point starts from the modes extrapolated from those already found, u(x - h_i) from
        2 u(x) - u(x + h_i) and u(x + h_i + h_j) from u(x + h_i) + u(x + h_j) - u(x), which
        are O(h^2) off: PIRLS then needs one iteration fewer than from a start O(h) away
        (VerbAgg: one instead of two).
    """
    x = np.asarray(x, float)
    n = len(x)
    f0 = fun(x)
    H = np.empty((n, n))
    E = np.eye(n) * step
    if modes is None:
        fp = np.array([fun(x + E[j]) for j in range(n)])
        fm = np.array([fun(x - E[j]) for j in range(n)])
        pair = lambda i, j: fun(x + E[i] + E[j])  # noqa: E731
    else:
        get, put = modes
        u0 = get()

        def at(point, start):
            put(start)
            return fun(point)

        def combine(coefs, *us):  # sum of coef * modes; None when a point failed (PIRLS)
            if any(u is None for u in us):
                return None
            return tuple(sum(c * a for c, a in zip(coefs, arrays, strict=True))
                         for arrays in zip(*us, strict=True))

        fp, up = np.empty(n), []
        for j in range(n):
            fp[j] = at(x + E[j], u0)
            up.append(get())
        fm = np.array([at(x - E[j], combine((2, -1), u0, up[j])) for j in range(n)])

        def pair(i, j):
            return at(x + E[i] + E[j], combine((1, 1, -1), up[i], up[j], u0))
    for j in range(n):
        H[j, j] = (fp[j] - 2 * f0 + fm[j]) / step**2
        for i in range(j):
            H[i, j] = H[j, i] = (pair(i, j) - fp[i] - fp[j] + f0) / step**2
    return H


def fit_laplace(model: GlmmModel, *, n_agq: int = 1, control: dict | None = None,
                theta0: np.ndarray | None = None, beta0: np.ndarray | None = None,
                engine_factory=None, engine0_factory=None) -> LaplaceFit:
    """Fit by the Laplace approximation (``n_agq`` 1) or its nAGQ = 0 variant.

    Parameters
    ----------
    model : GlmmModel
    n_agq : {0, 1}
    control : dict, optional
        ``optimizer`` ("bobyqa"), ``xtol_abs`` (1e-4, in theta and whitened beta),
        ``ftol_abs`` (0), ``initial_step`` (0.1), ``maxeval``, ``hessian`` (None: when
        fewer than 10,000 observations, as lme4; True / False to force), ``polish`` (False;
        True for Newton steps with finite-difference derivatives after the final stage, see
        :mod:`mixedfx.polish`, in its coordinates: theta and whitened beta for nAGQ = 1,
        theta for nAGQ = 0; a dict passes settings to :func:`mixedfx.polish.polish`).
    theta0, beta0 : numpy.ndarray, optional
        Starting values (display-order theta); the GLM's beta and theta = identity by default.
    engine_factory : callable, optional
        ``engine_factory(model)`` builds the u-only engine whose ``laplace(state)`` is the
        deviance optimized in the second stage (adaptive Gauss-Hermite quadrature passes its
        own); :class:`PirlsEngine` by default.
    engine0_factory : callable, optional
        ``engine0_factory(model)`` builds the engine with beta inside PIRLS for the nAGQ = 0
        stage (an out-of-core fit passes its own); ``PirlsEngine(model, free_beta=True)`` by
        default. With either factory, ``beta0`` should be given (the default GLM start
        reads the rows).
    """
    settings = dict(control or {})
    optimizer = settings.pop("optimizer", "bobyqa")
    use_hessian = settings.pop("hessian", None)
    # stage 2 stops when steps are below 1e-4 in theta and in whitened beta (1e-4 standard
    # errors): on cbpp, VerbAgg and a Poisson slope model the log-likelihood is then within
    # 1e-7 of the tight optimum, in 40% fewer evaluations than 1e-6
    xtol = settings.pop("xtol_abs", 1e-4)
    ftol_abs = settings.pop("ftol_abs", 0.0)
    step2 = settings.pop("initial_step", 0.1)
    maxeval = settings.pop("maxeval", 100_000)
    polish = settings.pop("polish", False)
    polish_user = polish if isinstance(polish, dict) else {}
    if settings:
        raise ValueError(f"unknown control setting(s) {', '.join(sorted(settings))}; use "
                         "optimizer, xtol_abs, ftol_abs, initial_step, maxeval, hessian, "
                         "polish")
    lower_theta = model.theta_lower
    start_theta = model.theta_initial if theta0 is None else np.asarray(theta0, float)
    start_beta = glm_beta(model) if beta0 is None else np.asarray(beta0, float)

    engine0 = (engine0_factory(model) if engine0_factory is not None
               else PirlsEngine(model, free_beta=True))
    obj0 = _Objective(engine0, model, True, start_beta)
    if not np.isfinite(obj0(start_theta)):
        err = obj0.last_error or PirlsError("PIRLS failed at the starting values")
        if beta0 is None:
            raise PirlsError(f"{err}. {_start_hint(model, start_beta)}") from err
        raise err
    # the nAGQ = 0 stage is only a start when the Laplace stage follows: a step tolerance of
    # 1e-2 in theta halves its evaluations and leaves the final fit unchanged (cbpp, VerbAgg,
    # Poisson slopes: same loglik to 1e-9, stage 2 as many evaluations)
    if n_agq:
        # only a start: modes to 1e-5 are ample for steps of 1e-2 (VerbAgg: 89 -> 66 PIRLS
        # iterations, same final fit)
        obj0.utol = STAGE0_UTOL
    opt0 = minimize(obj0, start_theta, lower_theta, optimizer=optimizer,
                    initial_step=0.2 if theta0 is None else 0.05,
                    xtol_abs=1e-2 if n_agq else xtol, maxeval=maxeval)
    if polish and not n_agq:
        obj0.utol, obj0.u = None, None  # the final estimates: modes at full tolerance
        # raw theta here, the polish's defaults (a second-order gradient at 1e-3 was biased
        # by h^2 f'''/6 = 4e-5 on cbpp, enough to point uphill; the fourth-order one is not)
        opt0 = polish_optimum(opt0, obj0, _polish_lower(optimizer, lower_theta),
                              **polish_user)
    theta_hat = np.asarray(opt0.final)
    try:
        if not n_agq:  # the final estimates: modes from zero at full tolerance
            obj0.utol, obj0.u = None, None
        state0 = obj0.state(theta_hat)
    except PirlsError as exc:
        raise PirlsError(f"at the nAGQ=0 estimates: {exc}") from exc
    vcov0 = _pls_vcov(engine0)
    if n_agq == 0:
        _warn_optimizer(opt0, obj0)
        return LaplaceFit(theta=theta_hat, beta=state0.beta, state=state0,
                          deviance=engine0.laplace(state0), vcov=vcov0, vcov_method="pls",
                          opt0=opt0, opt=None, engine=engine0, hessian=None)

    beta1 = state0.beta
    # beta = beta1 + C delta with C C' the nAGQ = 0 covariance of beta: in delta the deviance
    # is close to |delta|^2 near the optimum (unit scale, no correlation), which BOBYQA's
    # quadratic models fit in far fewer evaluations than raw, correlated coefficients
    scale = _whitening(vcov0)
    engine = (engine_factory(model) if engine_factory is not None
              else PirlsEngine(model, free_beta=False))
    # theta in units of its rough standard error (theta / sqrt(2 levels), as for a variance
    # from that many levels), so that one trust region and one step tolerance suit theta
    # and the whitened beta alike
    tscale = theta_scale(model, theta_hat)
    obj = _Objective(engine, model, False, beta1, scale, theta_hat, tscale)
    obj.u = state0.u
    ntheta = len(theta_hat)
    x0 = np.zeros(ntheta + len(beta1))
    with np.errstate(invalid="ignore"):
        t_lower = np.where(np.isfinite(lower_theta), (lower_theta - theta_hat) / tscale,
                           -np.inf)
    lower = np.concatenate([t_lower, np.full(len(beta1), -np.inf)])
    opt = minimize(obj, x0, lower, optimizer=optimizer, initial_step=step2, xtol_abs=xtol,
                   ftol_abs=ftol_abs,
                   maxeval=maxeval)
    if polish:
        opt = polish_optimum(opt, obj, _polish_lower(optimizer, lower),
                             **dict(POLISH, **polish_user))
    _warn_optimizer(opt, obj)
    x = np.asarray(opt.final)
    theta, beta = obj.split(x)
    state = obj.state(x)
    dev = engine.laplace(state)

    H, vcov, how = None, None, "pls"
    nobs = getattr(model, "nobs", None) or len(model.y)
    if use_hessian or (use_hessian is None and nobs < HESSIAN_NOBS_MAX):
        # Hessian in (theta, beta) on the deviance's own scale, as lme4
        def unscaled(z: np.ndarray) -> float:
            return obj(np.concatenate([(z[:ntheta] - theta_hat) / tscale,
                                       np.linalg.solve(scale, z[ntheta:] - beta1)]))

        def put(u) -> None:
            obj.u = u

        obj.u = state.u
        if polish:
            # central differences in the optimizer's coordinates (units of standard errors),
            # step POLISH_HESSIAN_STEP, mapped back: z = z0 + J x, H_z = J^-T H_x J^-1.
            # Forward differences at step 1e-4 carry ~1e-5 relative rounding noise from the
            # deviance's 1e-15 (1e-12 / h^2), which a fit polished to 1e-9 would keep in its
            # standard errors
            Jinv = np.linalg.inv(_block_diag(np.diag(tscale), scale))
            H = Jinv.T @ central_hessian(obj, x, POLISH_HESSIAN_STEP) @ Jinv
        else:
            H = hessian(unscaled, np.concatenate([theta, beta]), modes=(lambda: obj.u, put))
        obj.u = state.u
        try:
            Hinv = np.linalg.inv(H)
            vb = 2 * Hinv[ntheta:, ntheta:]
            if np.all(np.linalg.eigvalsh(H) > 0) and np.all(np.isfinite(vb)):
                vcov, how = (vb + vb.T) / 2, "hessian"
        except np.linalg.LinAlgError:
            pass
        if vcov is None:
            warnings.warn("the Hessian of the deviance in (theta, beta) is not positive "
                          "definite at the estimates: the fit may not be at a minimum; "
                          "standard errors come from the penalized system instead",
                          ConvergenceWarning, stacklevel=3)
    if vcov is None:
        engine0.run(model.tmap.to_engine(theta), beta, state.u)
        vcov = _pls_vcov(engine0)
    return LaplaceFit(theta=theta, beta=beta, state=state, deviance=dev, vcov=vcov,
                      vcov_method=how, opt0=opt0, opt=opt, engine=engine, hessian=H)


def _block_diag(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


def _polish_lower(optimizer: str, lower: np.ndarray) -> np.ndarray | None:
    """Bounds of the polish: the optimizer's (BOBYQA), none after NEWUOA (which ignores
    them; the deviance is even in each column's sign of the relative factor)."""
    return None if optimizer == "newuoa" else lower


def _warn_optimizer(opt: OptSummary, obj: _Objective) -> None:
    if not opt.converged:
        extra = f"; last PIRLS failure: {obj.last_error}" if obj.last_error else ""
        warnings.warn(f"the optimizer did not converge (status {opt.status} after {opt.feval} "
                      f"evaluations){extra}: the estimates may not be the optimum",
                      ConvergenceWarning, stacklevel=4)
