"""A linear mixed model with a structured residual covariance: the objective and the fit.

The optimizer sees one vector ``x = [theta, s]``: theta as in an ordinary LMM (lme4's
layout, display order) and the structures' unconstrained parameters ``s``. For each x the
design is prewhitened (:mod:`.blocks`), the engine's PLS factorization gives the profiled
REML criterion or ML deviance, and ``log det R`` enters where prior weights' ``sum log w``
does (:func:`~mixedfx.linalg.pls.profiled_deviance`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..design import ModelDesign
from ..fixed import drop_aliased
from ..linalg.blocks import Blocks
from ..linalg.pls import PlsFactorizer, profiled_deviance
from ..linalg.solution import PlsSolution, solve
from ..lmm import ThetaMap, display_order
from ..start import moment_start
from .base import BoundCorrelation, BoundVariance, Structure
from .blocks import GramBlocks, WhitenedDesign, term_matrix

GRAM_MEMORY = 1 << 28  # bytes of precomputed dense remainders beyond which we whiten instead


@dataclass(frozen=True, eq=False)
class StructureSource:
    """The structures as the user gave them and the rows they were bound to.

    Enough to bind them again without the data (a saved fit keeps its model this way).

    Attributes
    ----------
    correlation : Structure or None
        The correlation structure (``AR1``, ``CAR1``, ``CompSymm``).
    variances : tuple of Structure
        The variance functions (``VarIdent``, ``VarPower``).
    frame : pandas.DataFrame
        The structures' columns (and the default grouping factor) of the rows used.
    default_group : tuple of str or None
        The grouping factor used when a structure names none.
    """

    correlation: Structure | None
    variances: tuple
    frame: pd.DataFrame
    default_group: tuple[str, ...] | None

    def bind(self) -> tuple[BoundCorrelation | None, list[BoundVariance]]:
        """The bound correlation structure (or None) and variance functions."""
        corr = (self.correlation.bind(self.frame, self.default_group)
                if self.correlation is not None else None)
        return corr, [v.bind(self.frame, self.default_group) for v in self.variances]


def constant_within(codes: np.ndarray, groups: np.ndarray) -> bool:
    """Whether ``codes`` takes one value in each group of ``groups``."""
    pairs = np.unique(groups.astype(np.int64) * (int(codes.max()) + 1) + codes)
    return len(pairs) == len(np.unique(groups))


def engine_order(terms: list, groups: np.ndarray | None) -> tuple[list[int], bool]:
    """Engine order of the (display-ordered) terms and whether a dummy first term is needed.

    The first term must be compatible with the residual groups (constant within each); the
    one with the most random effects is chosen. The others follow, largest first. When no
    term is compatible, every term goes to the dense remainder behind a zero-variance dummy.
    """
    size = [-t.nlevels * t.dim for t in terms]
    ok = [k for k, t in enumerate(terms) if groups is None or constant_within(t.codes, groups)]
    if not ok:
        return sorted(range(len(terms)), key=lambda k: size[k]), True
    first = min(ok, key=lambda k: size[k])
    rest = sorted((k for k in range(len(terms)) if k != first), key=lambda k: size[k])
    return [first] + rest, False


class StructuredModel:
    """An LMM with residual covariance sigma^2 R(s), ready to evaluate at x = [theta, s].

    Parameters
    ----------
    formula : str
        The model formula.
    design : ModelDesign
        Numeric design of the rows used.
    reml : bool
        REML criterion (True) or ML deviance (False).
    correlation : BoundCorrelation or None
        Within-group correlation.
    variances : list of BoundVariance
        Variance functions (their sd multipliers multiply).
    fitted : numpy.ndarray, optional
        Fitted values that variance functions of the fitted values use (held fixed).
    precompute : bool, default True
        Use the correlation structure's Gram basis when it has one and there is no variance
        function: the cross-products are then combined from precomputed pieces at each
        evaluation instead of whitening the data (same values, cost independent of n).
    source : StructureSource, optional
        The unbound structures and their rows, kept so that a saved fit can rebuild the
        model (:meth:`from_source`).
    """

    def __init__(self, formula: str, design: ModelDesign, reml: bool,
                 correlation: BoundCorrelation | None, variances: list[BoundVariance],
                 fitted: np.ndarray | None = None, precompute: bool = True,
                 source: StructureSource | None = None) -> None:
        self.formula, self.design, self.reml = formula, design, reml
        self.source = source
        self.correlation, self.variances, self.fitted_cov = correlation, variances, fitted
        self.structures = ([correlation] if correlation is not None else []) + list(variances)
        self.X, self.fixed_names = drop_aliased(design.X, design.fixed_names, design.weights)
        self.dropped = tuple(n for n in design.fixed_names if n not in self.fixed_names)
        self.terms = display_order(design.terms)
        groups = correlation.groups if correlation is not None else None
        perm, self.dummy = engine_order(self.terms, groups)
        self.perm = perm
        self.tmap = ThetaMap(self.terms, perm)
        self.ntheta = sum(t.ntheta for t in self.terms)
        self.lower = np.concatenate([t.theta_lower_bounds() for t in self.terms])
        self._design_matrices()
        self.precompute = precompute
        self.gram: GramBlocks | None = None
        if precompute and correlation is not None and not variances:
            basis = correlation.gram_basis()
            m = self.Z_rest.shape[1] + self.XY.shape[1]
            if basis is not None and len(basis) * m * m * 8 <= GRAM_MEMORY:
                self.gram = GramBlocks(self.whitened, basis, self.sqrt_w)

    def _design_matrices(self) -> None:
        n = len(self.design.y)
        engine = [self.terms[k] for k in self.perm]
        if self.dummy:
            first_codes, self.Z1, self.l1 = np.zeros(n, np.int64), np.zeros((n, 1)), 1
            rest = engine
        else:
            first_codes, self.Z1, self.l1 = engine[0].codes, engine[0].Z, engine[0].nlevels
            rest = engine[1:]
        self.first_codes = first_codes
        offsets, off = [], 0
        for t in rest:
            offsets.append(off)
            off += t.nlevels * t.dim
        self.offsets = tuple(offsets)
        mats = [term_matrix(t.codes, t.Z, t.nlevels, o, off) for t, o in zip(rest, offsets,
                                                                             strict=True)]
        self.Z_rest = (sum(mats[1:], mats[0]) if mats else sp.csr_matrix((n, 0))).tocsr()
        self.XY = np.column_stack([self.X, self.design.y - self.design.offset])
        self.dims = (self.Z1.shape[1],) + tuple(t.dim for t in rest)
        self.nlevels = (self.l1,) + tuple(t.nlevels for t in rest)
        self.whitened = WhitenedDesign(first_codes, self.Z1, self.l1, self.Z_rest, self.XY,
                                       self.dims, self.nlevels, self.offsets)
        self._factorizer: PlsFactorizer | None = None
        self.sqrt_w = np.sqrt(self.design.weights)
        with np.errstate(divide="ignore"):
            w = self.design.weights
            self.sum_log_prior = float(np.sum(np.log(w[w > 0])))

    # ---- parameters -------------------------------------------------------------------
    @property
    def nstruct(self) -> int:
        """Number of residual-structure parameters."""
        return sum(s.nparams for s in self.structures)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """theta (display order) and each structure's unconstrained parameters."""
        x = np.asarray(x, dtype=float)
        theta, pos, segs = x[: self.ntheta], self.ntheta, []
        for s in self.structures:
            segs.append(x[pos : pos + s.nparams])
            pos += s.nparams
        return theta, segs

    def residual_params(self, x: np.ndarray) -> dict[str, float]:
        """Structure parameters in nlme's parameterization (varIdent: every level's ratio)."""
        _, segs = self.split(x)
        out: dict[str, float] = {}
        for s, seg in zip(self.structures, segs, strict=True):
            out.update(s.report(seg))
        return out

    def sd_scale(self, x: np.ndarray) -> float:
        """Geometric mean of the sd multipliers v at x (1 without variance functions)."""
        if not self.variances:
            return 1.0
        return float(np.exp(np.mean(np.log(self.residual_sd(x)))))

    def from_internal(self, z: np.ndarray) -> np.ndarray:
        """x from the optimizer's z, whose theta is relative to sigma * geomean(v).

        A variance function moves the scale of the residuals (|fitted|^power is about
        25^power on Orthodont) and sigma and theta must follow; the optimizer sees theta on
        the scale of the normalized multipliers v / geomean(v) instead, where it stays put.
        The profiled criterion is unchanged by this (REML too: the n - p and p powers of
        the scale cancel).
        """
        x = np.array(z, dtype=float)
        x[: self.ntheta] *= self.sd_scale(x)
        return x

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`from_internal`."""
        z = np.array(x, dtype=float)
        z[: self.ntheta] /= self.sd_scale(z)
        return z

    def internal_objective(self, z: np.ndarray) -> float:
        """:meth:`objective` at ``from_internal(z)`` (what the optimizer minimizes)."""
        with np.errstate(all="ignore"):
            x = self.from_internal(z)
        return self.objective(x) if np.all(np.isfinite(x)) else np.inf

    def engine_theta(self, theta: np.ndarray) -> np.ndarray:
        t = self.tmap.to_engine(np.asarray(theta, float))
        return np.concatenate([[0.0], t]) if self.dummy else t

    # ---- whitening --------------------------------------------------------------------
    def residual_sd(self, x: np.ndarray) -> np.ndarray:
        """sd multipliers v_i of the rows (product of the variance functions)."""
        _, segs = self.split(x)
        v = np.ones(len(self.design.y))
        for s, seg in zip(self.structures, segs, strict=True):
            if isinstance(s, BoundVariance):
                v = v * s.sd(seg, self.fitted_cov)
        return v

    def whitener(self, x: np.ndarray) -> tuple[sp.csr_matrix | np.ndarray | None, float]:
        """W with W R W' = I, R = diag(1/sqrt(w)) V C V diag(1/sqrt(w)); and -log det R.

        Without a correlation structure W is diagonal and returned as a vector.
        """
        _, segs = self.split(x)
        scale = self.sqrt_w / self.residual_sd(x)
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            return None, -np.inf
        log_det = -2.0 * float(np.sum(np.log(scale)))
        if self.correlation is not None:
            W, log_det_c = self.correlation.whitener(segs[0])
            if W is None or not np.isfinite(log_det_c):
                return None, -np.inf
            W = W.copy()
            W.data *= scale[W.indices]
            return W, -(log_det + log_det_c)
        return scale, -log_det

    def blocks(self, x: np.ndarray) -> Blocks | None:
        """Cross-product blocks of the whitened design at x (None where R is invalid)."""
        if self.gram is not None:
            coef, log_det_c = self.correlation.gram_coefficients(self.split(x)[1][0])
            if coef is None or not np.isfinite(log_det_c):
                return None
            return self.gram.combine(coef, len(self.design.y), self.sum_log_prior - log_det_c)
        W, sum_log_w = self.whitener(x)
        if W is None:
            return None
        return self.whitened.blocks(W, sum_log_w)

    def factorizer(self, blocks: Blocks) -> PlsFactorizer:
        """A factorizer of ``blocks``, reusing the last one when the sparsity is the same.

        The pattern of A21 (which remainder columns each first-term level touches) rarely
        changes between evaluations; the factorizer's set-up (its elimination tables) is
        then kept and only the values are copied in (its blocks' other fields, such as
        ``sum_log_weights``, are stale: read them from ``blocks``).
        """
        old = self._factorizer
        if old is not None:
            b = old.blocks
            if (b.A21_idx.shape == blocks.A21_idx.shape and np.array_equal(b.A21_ptr,
                                                                           blocks.A21_ptr)
                    and np.array_equal(b.A21_idx, blocks.A21_idx)):
                np.copyto(b.A11, blocks.A11)
                np.copyto(b.A21_val, blocks.A21_val)
                np.copyto(b.A22, blocks.A22)
                return old
        self._factorizer = PlsFactorizer(blocks)
        return self._factorizer

    # ---- evaluation -------------------------------------------------------------------
    def objective(self, x: np.ndarray) -> float:
        """REML criterion or ML deviance at x = [theta, s], profiled over beta and sigma."""
        theta, _ = self.split(x)
        with np.errstate(all="ignore"):
            blocks = self.blocks(x)
            if blocks is None:
                return np.inf
            f = self.factorizer(blocks).factor(self.engine_theta(theta))
            return profiled_deviance(f, blocks, self.reml)  # its sum_log_weights is current

    def solve(self, x: np.ndarray) -> tuple[PlsSolution, Blocks]:
        """beta, conditional modes and covariances at x; modes per term in ``perm`` order."""
        theta, _ = self.split(x)
        blocks = self.blocks(x)
        sol = solve(PlsFactorizer(blocks), self.engine_theta(theta))
        if self.dummy:
            sol = replace(sol, b=sol.b[1:], cond_cov=sol.cond_cov[1:])
        return sol, blocks

    def conditional_fitted(self, sol: PlsSolution) -> np.ndarray:
        """X beta + Z b + offset on the data scale."""
        fitted = self.X @ sol.beta + self.design.offset
        for pos, k in enumerate(self.perm):
            t = self.terms[k]
            fitted = fitted + np.einsum("ij,ij->i", t.Z, sol.b[pos][t.codes])
        return fitted

    def start(self) -> np.ndarray:
        """Moment-based theta (ignoring the structure) and each structure's start, on the
        optimizer's scale (see :meth:`from_internal`)."""
        theta = moment_start(self.terms, self.X, self.design.y - self.design.offset,
                             self.design.weights)
        return np.concatenate([theta] + [s.start() for s in self.structures])

    def with_fitted(self, fitted: np.ndarray) -> StructuredModel:
        """The same model with new fixed fitted values for variance functions."""
        return StructuredModel(self.formula, self.design, self.reml, self.correlation,
                               self.variances, fitted, self.precompute, self.source)

    def with_reml(self, reml: bool) -> StructuredModel:
        """The same model with the other criterion."""
        return StructuredModel(self.formula, self.design, reml, self.correlation,
                               self.variances, self.fitted_cov, self.precompute, self.source)

    def with_response(self, y: np.ndarray) -> StructuredModel:
        """The same design and structures with a new response (simulation, bootstrap)."""
        design = replace(self.design, y=np.asarray(y, dtype=float))
        return StructuredModel(self.formula, design, self.reml, self.correlation,
                               self.variances, self.fitted_cov, self.precompute, self.source)

    @classmethod
    def from_source(cls, formula: str, design: ModelDesign, reml: bool,
                    source: StructureSource, fitted: np.ndarray | None = None,
                    precompute: bool = True) -> StructuredModel:
        """The model with its structures bound again to ``source.frame`` (loading a fit)."""
        correlation, variances = source.bind()
        return cls(formula, design, reml, correlation, variances, fitted, precompute, source)

    def fit(self, *, optimizer: str = "newuoa", control: dict | None = None,
            data_name: str | None = None, x0: np.ndarray | None = None):
        """Optimize [theta, structure parameters]; see :func:`mixedfx.residual.fit_model`."""
        from .fit import fit_model

        return fit_model(self, optimizer=optimizer, control=control, data_name=data_name,
                         x0=x0)

    def engine_view(self, blocks: Blocks) -> SimpleNamespace:
        """The attributes :func:`mixedfx.lmm._assemble` reads, with the blocks at the optimum."""
        return SimpleNamespace(design=self.design, X=self.X, terms=self.terms, perm=self.perm,
                               reml=self.reml, blocks=blocks, lower=self.lower,
                               fixed_names=self.fixed_names, dropped=self.dropped,
                               formula=self.formula)
