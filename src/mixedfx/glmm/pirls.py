"""Penalized iteratively reweighted least squares (PIRLS) for the conditional modes.

At covariance parameters theta (and fixed effects beta), the conditional modes u of the
spherical random effects minimize the penalized deviance

    pdev(u) = sum_i d(y_i, mu_i) + |u|^2,   mu = g^-1(offset + X beta + Z Lambda u).

Each PIRLS step is one weighted penalized least-squares solve of the LMM engine: IRLS weights
w = a mu_eta^2 / V(mu) and the working response z = eta - offset - X beta + (y - mu)/mu_eta
go into the engine's cross-product blocks, the blocked Cholesky factor gives the new modes,
and the step is halved while the penalized deviance grows (lme4's ``pwrssUpdate``). With
``beta`` left free (lme4's nAGQ = 0), beta is solved in the same system.

The Laplace approximation to -2 log L is then

    ldL2 + pdev(u) - 2 sum_i log p(y_i | mu_i, saturated constants)     (lme4's ``Laplace``),

with every normalizing constant (see :meth:`PirlsEngine.laplace`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..design.reterm import theta_to_factor
from ..errors import MixedFXError
from ..linalg.blocks import Blocks
from ..linalg.pls import PlsFactorizer
from .crossprod import WeightedCrossprod
from .kernels import add_random_part, first_term_modes, irls_working
from .model import GlmmModel

MAXIT = 50
MAX_HALVINGS = 20
TOL = 1e-15  # relative change of the penalized deviance (rounding level)
# Converged when the last full Newton step moved no mode (spherical scale) or beta by more
# than UTOL: the modes are then within ~UTOL^2 of the optimum (quadratic convergence), and
# the factor, hence ldL2, is refreshed at their weights (one refill and factorization, no
# further step). Before, the rule was UTOL = 1e-11 with the factor of the last step, whose
# weights lag one step behind: it needed one more full iteration per evaluation to keep
# ldL2 at rounding level (VerbAgg: 329 -> 250 PIRLS iterations, the same fit).
UTOL = 1e-7


class PirlsError(MixedFXError):
    """PIRLS could not find the conditional modes (message names the failing step)."""


@dataclass(frozen=True, eq=False)
class PirlsState:
    """Conditional modes at one theta (engine order).

    Attributes
    ----------
    u : tuple of numpy.ndarray
        Spherical modes per term (engine order), shape (levels, dim).
    beta : numpy.ndarray
        Fixed effects used (or found, for nAGQ = 0).
    eta, mu : numpy.ndarray
        Linear predictor (with offset) and means at the modes.
    weights : numpy.ndarray
        IRLS weights of the last factorization.
    ldL2 : float
        log det(Lambda'Z'WZ Lambda + I) of the last factorization.
    sqrL : float
        |u|^2.
    dev : float
        -2 sum of the log-likelihood kernel at the modes (the deviance up to a constant in
        y; see :meth:`~mixedfx.families.Family.kernel`).
    ldRX2 : float
        log det of X's block (nAGQ = 0 only; 0 otherwise).
    iterations : int
    theta : numpy.ndarray
        Engine-order theta of the state.
    """

    u: tuple[np.ndarray, ...]
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    weights: np.ndarray
    ldL2: float
    sqrL: float
    dev: float
    ldRX2: float
    iterations: int
    theta: np.ndarray

    @property
    def pdev(self) -> float:
        return self.dev + self.sqrL


def _modes(fz: PlsFactorizer, blocks: Blocks, f) -> tuple[list[np.ndarray], np.ndarray, float,
                                                          float]:
    """Spherical modes per term, beta (if X is in the system), ldL2 and ldRX2 from a factor."""
    L = f.L
    m, mr, p, factors = blocks.m, blocks.m_random, blocks.p, f.factors
    if m > 1:
        # the factor's lower triangle is the upper triangle of the Fortran-ordered L.T:
        # L' x = r_yy e_m gives x = (-L11'^{-1} l_y, 1), the remainder's solution, without
        # copying the leading block
        rhs = np.zeros((m, 1))
        rhs[-1, 0] = L[-1, -1]
        x, info = lapack.dtrtrs(L.T, rhs, lower=0)
        if info != 0:
            raise PirlsError(f"singular penalized factor (dtrtrs info {info})")
        x2 = -x[:-1, 0]
    else:
        x2 = np.zeros(0)
    u_rest, beta = x2[:mr], x2[mr : mr + p]
    u = [None]
    z = []
    for k, off in enumerate(blocks.offsets):
        lk, pk = blocks.nlevels[k + 1], blocks.dims[k + 1]
        uk = u_rest[off : off + lk * pk].reshape(lk, pk)
        u.append(uk)
        z.append((uk @ factors[k + 1].T).ravel())
    zvec = np.concatenate(z + [beta, [-1.0]])
    u[0] = first_term_modes(blocks.A11, blocks.A21_val, blocks.A21_ptr, blocks.A21_idx, zvec,
                            np.ascontiguousarray(factors[0]))
    diag = np.diagonal(L)
    ldL2 = float(f.logdet_first + 2 * np.sum(np.log(diag[:mr])))
    ldRX2 = float(2 * np.sum(np.log(diag[mr : mr + p])))
    return u, beta, ldL2, ldRX2


class PirlsEngine:
    """PIRLS for one model; ``free_beta`` puts beta into the solve (lme4's nAGQ = 0).

    Parameters
    ----------
    model : GlmmModel
    free_beta : bool
    """

    def __init__(self, model: GlmmModel, free_beta: bool) -> None:
        self.model = model
        self.free_beta = free_beta
        self.terms = model.engine_terms
        n = len(model.y)
        X = model.X if free_beta else np.zeros((n, 0))
        self.cross = WeightedCrossprod(self.terms, X)
        self.fz = PlsFactorizer(self.cross.blocks)
        self._work = np.empty_like(self.cross.blocks.A22)
        fam = model.family
        self.fixed_dispersion = fam.fixed_dispersion
        y, a = model.y, model.prior
        # -2 log p(y | mu) = -2 sum kernel(y, mu) + constant (fixed dispersion)
        mu0 = fam.mustart(y, a)
        self.constant = float(-2 * np.sum(fam.loglik(y, mu0, a) - fam.kernel(y, mu0, a)))
        self._y = np.ascontiguousarray(model.y, dtype=float)
        self._prior = np.ascontiguousarray(model.prior, dtype=float)
        self._offset = np.ascontiguousarray(model.offset, dtype=float)
        self._zc = [(np.ascontiguousarray(t.Z, dtype=float),
                     np.ascontiguousarray(t.codes, dtype=np.int64)) for t in self.terms]
        self._xbeta_key: bytes | None = None
        self._xbeta = np.zeros(n)

    def factors(self, theta_engine: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for t in self.terms:
            out.append(theta_to_factor(theta_engine[start : start + t.ntheta], t.dim))
            start += t.ntheta
        return out

    def random_part(self, factors: list[np.ndarray], u) -> np.ndarray:
        """Z Lambda u on the rows."""
        out = np.zeros(len(self.model.y))
        for (Z, codes), T, uk in zip(self._zc, factors, u, strict=True):
            add_random_part(out, Z, codes, np.ascontiguousarray(uk @ T.T))
        return out

    def fixed_part(self, beta: np.ndarray) -> np.ndarray:
        """offset + X beta (cached for the last beta)."""
        key = np.asarray(beta, float).tobytes()
        if key != self._xbeta_key:
            self._xbeta = self.model.offset + self.model.X @ beta
            self._xbeta_key = key
        return self._xbeta

    def zero_modes(self) -> tuple[np.ndarray, ...]:
        return tuple(np.zeros((t.nlevels, t.dim)) for t in self.terms)

    def _pdev(self, eta: np.ndarray, u) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(dev, |u|^2, mu, d mu / d eta) at the linear predictor ``eta``."""
        fam, m = self.model.family, self.model
        mu, d = fam.inverse(eta)
        dev = -2.0 * fam.kernel_sum(m.y, mu, m.prior)
        sqrL = float(sum(np.vdot(uk, uk) for uk in u))
        return dev, sqrL, mu, d

    def _factor_at(self, theta_engine, eta, mu, d, xb, it):
        """Refill the blocks with the IRLS weights and working response of (eta, mu) and
        factor them; (weights, factor)."""
        fam = self.model.family
        w, z = np.empty_like(eta), np.empty_like(eta)
        if not irls_working(self._prior, d, np.ascontiguousarray(fam.variance(mu)), eta,
                            self._offset if self.free_beta else xb, self._y, mu, w, z):
            raise PirlsError(f"PIRLS iteration {it}: non-finite IRLS weights or working "
                             "response (fitted means at the edge of the family's range)")
        self.cross.update(w, z)
        f = self.fz.factor(theta_engine, out=self._work)
        if not f.ok:
            raise PirlsError(f"PIRLS iteration {it}: the penalized weighted system is not "
                             "positive definite (collinear fixed effects or extreme weights)")
        return w, f

    def _refactor(self, theta_engine, eta, mu, d, xb, it) -> tuple[np.ndarray, float, float]:
        """Refactor at the weights of (eta, mu); (weights, ldL2, ldRX2)."""
        w, f = self._factor_at(theta_engine, eta, mu, d, xb, it)
        b = self.cross.blocks
        diag = np.diagonal(f.L)
        mr, p = b.m_random, b.p
        ldL2 = float(f.logdet_first + 2 * np.sum(np.log(diag[:mr])))
        return w, ldL2, float(2 * np.sum(np.log(diag[mr : mr + p])))

    def run(self, theta_engine: np.ndarray, beta: np.ndarray, u0=None, *, tol: float = TOL,
            utol: float = UTOL, maxit: int = MAXIT, refresh: bool = True) -> PirlsState:
        """Iterate to the conditional modes at theta (engine order) and beta (the start
        of beta when it is free).

        ``refresh=False`` skips the final refactorization at the modes' weights (ldL2 then
        lags one step, an error of order ``utol``: enough for a rough start).

        Raises
        ------
        PirlsError
            When a factorization fails or step halving cannot reduce the penalized deviance.
        """
        theta_engine = np.asarray(theta_engine, float)
        factors = self.factors(theta_engine)
        u = tuple(np.array(x, float) for x in (u0 if u0 is not None else self.zero_modes()))
        beta = np.asarray(beta, float).copy()
        xb = self.fixed_part(beta)
        eta = xb + self.random_part(factors, u)
        dev, sqrL, mu, d = self._pdev(eta, u)
        old = dev + sqrL
        if not np.isfinite(old):
            raise PirlsError("PIRLS: the starting linear predictor gives a non-finite deviance "
                             "(means outside the family's range); check the starting values "
                             "and the link")
        for it in range(1, maxit + 1):
            w, f = self._factor_at(theta_engine, eta, mu, d, xb, it)
            u_new, beta_new, ldL2, ldRX2 = _modes(self.fz, self.cross.blocks, f)
            eta_new = (self.fixed_part(beta_new) if self.free_beta else xb) \
                + self.random_part(factors, u_new)
            step = 1.0
            for _ in range(MAX_HALVINGS + 1):
                u_try = tuple(a + step * (b - a) for a, b in zip(u, u_new, strict=True))
                b_try = beta + step * (beta_new - beta) if self.free_beta else beta
                eta_try = eta_new if step == 1.0 else eta + step * (eta_new - eta)
                dev, sqrL, mu_try, d_try = self._pdev(eta_try, u_try)
                pdev = dev + sqrL
                # the kernel-based deviance can be negative: tolerance on |old|
                if np.isfinite(pdev) and pdev <= old + 1e-12 * abs(old) + 1e-12:
                    break
                step /= 2
            else:
                raise PirlsError(f"PIRLS iteration {it}: step halving ({MAX_HALVINGS} halvings) "
                                 f"could not reduce the penalized deviance {old:.6g}; the model "
                                 "may be separated or the parameters extreme")
            moved = max([float(np.max(np.abs(a - b))) for a, b in zip(u, u_try, strict=True)]
                        + ([float(np.max(np.abs(beta - b_try)))] if beta.size else []))
            change = abs(old - pdev) / max(abs(pdev), 1e-10)
            u, beta, eta, mu, d = u_try, b_try, eta_try, mu_try, d_try
            old = pdev
            if step == 1.0 and (moved < utol or (it >= 8 and change < tol)):
                if refresh:
                    w, ldL2, ldRX2 = self._refactor(theta_engine, eta, mu, d, xb, it)
                return PirlsState(u=u, beta=beta, eta=eta, mu=mu, weights=w, ldL2=ldL2,
                                  sqrL=sqrL, dev=dev, ldRX2=ldRX2, iterations=it,
                                  theta=theta_engine)
        raise PirlsError(f"PIRLS did not converge in {maxit} iterations (last relative change "
                         f"{change:.2g}, last step {moved:.2g})")

    def minus_two_loglik(self, state: PirlsState) -> float:
        """-2 log p(y | mu) with all constants at the modes' means."""
        m, fam = self.model, self.model.family
        if self.fixed_dispersion:
            return state.dev + self.constant
        phi = float(np.sum(fam.dev_resids(m.y, state.mu, m.prior)) / np.sum(m.prior))
        return float(-2 * np.sum(fam.loglik(m.y, state.mu, m.prior, phi)))

    def laplace(self, state: PirlsState) -> float:
        """Laplace approximation to -2 log L: ldL2 + |u|^2 - 2 log p(y | mu)."""
        return state.ldL2 + state.sqrL + self.minus_two_loglik(state)
