"""PIRLS out of core: each step is one pass over the rows (see :mod:`.glmm_rows`).

:class:`OutOfCorePirls` has the interface of :class:`mixedfx.glmm.pirls.PirlsEngine`
(``run(theta_engine, beta, u0) -> PirlsState``, ``laplace(state)``,
``minus_two_loglik(state)``, ``fz``, ``factors``) and the same iteration: the blocks of the
weighted penalized system are the grouped sums of one pass at the current modes, the same
pass also gives the penalized deviance of the point, so a step costs one pass and each
halving one more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design import ReTerm
from ..design.reterm import theta_to_factor
from ..glmm.pirls import MAX_HALVINGS, MAXIT, TOL, UTOL, PirlsError, PirlsState, _modes
from ..linalg.pls import PlsFactorizer
from ..lmm import ThetaMap
from .aggblocks import aggregate_blocks
from .glmm_rows import Params, Rows, chunk_pass, merge_pass


@dataclass(frozen=True, eq=False)
class OocGlmmModel:
    """A GLMM whose rows stay in the data source (no X, y or Z in memory).

    ``terms`` are display-order :class:`ReTerm` with levels but no rows; ``xcols`` and
    ``zcols`` (engine order) the model columns; ``nobs`` the complete rows.
    """

    formula: str
    family: object
    fixed_names: tuple[str, ...]
    terms: list[ReTerm]
    perm: list[int]
    tmap: ThetaMap
    xcols: tuple
    zcols: tuple
    codes: tuple[str, ...]
    nobs: int
    n_dropped: int
    constant: float
    rows: Rows

    @property
    def engine_terms(self) -> list[ReTerm]:
        return [self.terms[k] for k in self.perm]

    @property
    def theta_lower(self) -> np.ndarray:
        return np.concatenate([t.theta_lower_bounds() for t in self.terms])

    @property
    def theta_initial(self) -> np.ndarray:
        return np.concatenate([t.theta_initial() for t in self.terms])


class _Record:
    """A stand-in source that records aggregate_blocks' requests (keys, pairs)."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[str, ...], list]] = []

    def sums(self, keys, pairs):
        self.requests.append((tuple(keys), list(pairs)))
        return [np.zeros(1, dtype=np.int64) for _ in keys], np.zeros((1, len(pairs)))


class _Replay:
    """A stand-in source that returns one pass's sums in request order."""

    def __init__(self, results) -> None:
        self.results = iter(results)

    def sums(self, keys, pairs):
        return next(self.results)


class OutOfCorePirls:
    """PIRLS for an :class:`OocGlmmModel`; ``free_beta`` puts beta in the solve (nAGQ = 0)."""

    def __init__(self, model: OocGlmmModel, free_beta: bool, pair_keys: dict) -> None:
        self.model, self.free_beta = model, free_beta
        self.terms = model.engine_terms
        self.fixed_dispersion = model.family.fixed_dispersion
        self.constant = model.constant
        self.xcols = list(model.xcols) if free_beta else []
        nlevels = [t.nlevels for t in self.terms]
        self._agg = (list(model.zcols), list(model.codes), nlevels)
        rec = _Record()
        aggregate_blocks(rec, *self._agg, self.xcols, model.nobs)
        level_of = dict(zip(model.codes, nlevels, strict=True))
        self._requests = []
        self._keys = []
        for keys, pairs in rec.requests:
            if not keys:
                table, karr = None, []
            elif len(keys) == 1:
                table, karr = level_of[keys[0]], [np.arange(level_of[keys[0]])]
            else:
                uniq = pair_keys[keys]
                table = (uniq, level_of[keys[1]])
                karr = [uniq // level_of[keys[1]], uniq % level_of[keys[1]]]
            self._requests.append((keys, tuple(pairs), table))
            self._keys.append(karr)
        self.blocks = None
        self.fz: PlsFactorizer | None = None
        self._work = None
        self.passes = 0

    def factors(self, theta_engine: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for t in self.terms:
            out.append(theta_to_factor(theta_engine[start : start + t.ntheta], t.dim))
            start += t.ntheta
        return out

    def zero_modes(self) -> tuple[np.ndarray, ...]:
        return tuple(np.zeros((t.nlevels, t.dim)) for t in self.terms)

    def _pass(self, beta, b, blocks: bool = True, devres: bool = False) -> dict:
        self.passes += 1
        params = Params(mode="mixed", beta=np.asarray(beta, float), b=tuple(b),
                        requests=tuple(self._requests) if blocks else (),
                        shift_x=not self.free_beta, devres=devres)
        return self.model.rows.reduce(chunk_pass, merge_pass, self.model.rows.plan, params)

    def _load(self, out: dict, it: int) -> None:
        """Place a pass's sums into the blocks (built on the first pass, refilled in place)."""
        if out["bad"]:
            raise PirlsError(f"PIRLS iteration {it}: non-finite IRLS weights or working "
                             f"response on {out['bad']} row(s) (fitted means at the edge of "
                             "the family's range)")
        res = [(k, s) for k, s in zip(self._keys, out["sums"], strict=True)]
        new = aggregate_blocks(_Replay(res), *self._agg, self.xcols, self.model.nobs)
        if self.blocks is None:
            self.blocks = new
            self.fz = PlsFactorizer(new)
            self._work = np.empty_like(new.A22)
        else:
            self.blocks.A11[...] = new.A11
            self.blocks.A21_val[...] = new.A21_val
            self.blocks.A22[...] = new.A22

    def _factor(self, theta_engine, it):
        f = self.fz.factor(theta_engine, out=self._work)
        if not f.ok:
            raise PirlsError(f"PIRLS iteration {it}: the penalized weighted system is not "
                             "positive definite (collinear fixed effects or extreme weights)")
        return f

    def run(self, theta_engine: np.ndarray, beta: np.ndarray, u0=None, *, tol: float = TOL,
            utol: float = UTOL, maxit: int = MAXIT, refresh: bool = True) -> PirlsState:
        """Conditional modes at theta (engine order) and beta (its start when free), as
        :meth:`mixedfx.glmm.pirls.PirlsEngine.run`; the state holds no per-row arrays."""
        theta_engine = np.asarray(theta_engine, float)
        factors = self.factors(theta_engine)
        u = tuple(np.array(x, float) for x in (u0 if u0 is not None else self.zero_modes()))
        beta = np.asarray(beta, float).copy()

        def b_of(uu):
            return [np.ascontiguousarray(uk @ T.T) for uk, T in zip(uu, factors, strict=True)]

        out = self._pass(beta, b_of(u))
        dev = -2.0 * out["kernel"]
        sqrL = float(sum(np.vdot(uk, uk) for uk in u))
        old = dev + sqrL
        if not np.isfinite(old):
            raise PirlsError("PIRLS: the starting linear predictor gives a non-finite deviance "
                             "(means outside the family's range); check the starting values "
                             "and the link")
        change = moved = np.inf
        for it in range(1, maxit + 1):
            self._load(out, it)
            f = self._factor(theta_engine, it)
            u_new, beta_new, ldL2, ldRX2 = _modes(self.fz, self.blocks, f)
            step = 1.0
            for _ in range(MAX_HALVINGS + 1):
                u_try = tuple(a + step * (b - a) for a, b in zip(u, u_new, strict=True))
                b_try = beta + step * (beta_new - beta) if self.free_beta else beta
                out = self._pass(b_try, b_of(u_try))
                dev = -2.0 * out["kernel"]
                sqrL = float(sum(np.vdot(uk, uk) for uk in u_try))
                pdev = dev + sqrL
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
            u, beta = u_try, b_try
            old = pdev
            if step == 1.0 and (moved < utol or (it >= 8 and change < tol)):
                if refresh:  # the last pass's sums are at the modes: factor them
                    self._load(out, it)
                    f = self._factor(theta_engine, it)
                    diag = np.diagonal(f.L)
                    mr, p = self.blocks.m_random, self.blocks.p
                    ldL2 = float(f.logdet_first + 2 * np.sum(np.log(diag[:mr])))
                    ldRX2 = float(2 * np.sum(np.log(diag[mr : mr + p])))
                empty = np.zeros(0)
                return PirlsState(u=u, beta=beta, eta=empty, mu=empty, weights=empty,
                                  ldL2=ldL2, sqrL=sqrL, dev=dev, ldRX2=ldRX2, iterations=it,
                                  theta=theta_engine)
        raise PirlsError(f"PIRLS did not converge in {maxit} iterations (last relative change "
                         f"{change:.2g}, last step {moved:.2g})")

    def minus_two_loglik(self, state: PirlsState) -> float:
        """-2 log p(y | mu) with all constants (fixed-dispersion families)."""
        return state.dev + self.constant

    def laplace(self, state: PirlsState) -> float:
        """Laplace approximation to -2 log L: ldL2 + |u|^2 - 2 log p(y | mu)."""
        return state.ldL2 + state.sqrL + self.minus_two_loglik(state)

    def conditional_deviance(self, state: PirlsState) -> float:
        """Sum of the deviance residuals at the modes (one pass)."""
        factors = self.factors(state.theta)
        b = [np.ascontiguousarray(uk @ T.T) for uk, T in zip(state.u, factors, strict=True)]
        return float(self._pass(state.beta, b, blocks=False, devres=True)["devres"])


def glm_beta_rows(model: OocGlmmModel, maxit: int = 25, tol: float = 1e-8) -> np.ndarray:
    """The GLM's fixed effects (no random effects) by IRLS passes, as
    :func:`mixedfx.glmm.laplace.glm_beta`: X'WX and X'Wz are one pass each iteration."""
    from .sqlagg import Y

    xcols = list(model.xcols)
    p = len(xcols)
    pairs = [(xcols[i], xcols[j]) for i in range(p) for j in range(i + 1)]
    pairs += [(xcols[i], Y) for i in range(p)]
    req = (((), tuple(pairs), None),)
    rows = model.rows
    beta = np.zeros(p)
    mode, dev_old = "mustart", np.inf
    for _ in range(maxit):
        params = Params(mode=mode, beta=beta, requests=req, devres=False)
        out = rows.reduce(chunk_pass, merge_pass, rows.plan, params)
        v = out["sums"][0][0]
        XtWX, k = np.zeros((p, p)), 0
        for i in range(p):
            for j in range(i + 1):
                XtWX[i, j] = XtWX[j, i] = v[k]
                k += 1
        try:
            beta = np.linalg.solve(XtWX, v[k:])
        except np.linalg.LinAlgError:
            break
        mode = "fixed"
        dev = rows.reduce(chunk_pass, merge_pass, rows.plan,
                          Params(mode="fixed", beta=beta, devres=True))["devres"]
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta
