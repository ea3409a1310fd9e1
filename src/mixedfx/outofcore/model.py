"""An :class:`~mixedfx.lmm.LmmModel` whose blocks came from aggregation, and its result."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..design import ReTerm
from ..errors import ConvergenceWarning, SingularFitWarning
from ..linalg.pls import PlsFactorizer
from ..lmm import (
    LmmModel,
    ThetaMap,
    _is_singular,
    _labels,
    _ranef,
    _varcorr,
    display_order,
    engine_permutation,
)
from ..results import LmmResult
from ..start import _relative_factor, moment_start_blocks


class AggregatedModel(LmmModel):
    """A model evaluated from aggregated blocks: no rows in memory.

    ``terms`` are :class:`ReTerm` with levels and column names but no rows (``Z`` has
    zero rows). ``source`` and the column specs are kept to write fitted values later.
    ``weights_used``: whether prior weights other than 1 weighted the blocks.
    """

    def __init__(self, formula: str, terms: list[ReTerm], fixed_names: tuple[str, ...],
                 blocks, beta_shift: np.ndarray, reml: bool, n_dropped: int,
                 writer=None, weights_used: bool = False) -> None:
        self.formula, self.reml, self.design = formula, reml, None
        self.fixed_names, self.dropped = tuple(fixed_names), ()
        self.terms = display_order(tuple(terms))
        self.perm = engine_permutation(self.terms)
        self.tmap = ThetaMap(self.terms, self.perm)
        self.beta_shift = beta_shift
        self.blocks = blocks
        self.factorizer = PlsFactorizer(blocks)
        self.theta0 = np.concatenate([t.theta_initial() for t in self.terms])
        self.lower = np.concatenate([t.theta_lower_bounds() for t in self.terms])
        self._work = np.empty_like(blocks.A22)
        self.n_dropped = n_dropped
        self.writer = writer
        self.weights_used = weights_used

    @staticmethod
    def order(terms: list[ReTerm]) -> list[int]:
        """Formula-order indices of ``terms`` in engine order (the order of the blocks)."""
        disp = sorted(range(len(terms)), key=lambda k: -terms[k].nlevels)
        perm = engine_permutation([terms[k] for k in disp])
        return [disp[j] for j in perm]

    def with_reml(self, reml: bool) -> AggregatedModel:
        """The same blocks with the other criterion."""
        return AggregatedModel(self.formula, list(self.terms), self.fixed_names, self.blocks,
                               self.beta_shift, reml, self.n_dropped, self.writer,
                               self.weights_used)

    def with_response(self, y):
        raise NotImplementedError("a new response needs a new aggregation pass out of core")

    def moment_theta(self) -> np.ndarray:
        """Moment-based starting theta (display order) from the aggregated blocks; see
        :func:`mixedfx.start.moment_start_blocks`."""
        covs, sigma2 = moment_start_blocks(self.blocks)
        engine_terms = [self.terms[k] for k in self.perm]
        theta = [t.theta_initial() if cov is None else _relative_factor(cov / sigma2)
                 for t, cov in zip(engine_terms, covs, strict=True)]
        return self.tmap.to_display(np.concatenate(theta))

    def fit(self, *, optimizer: str = "newuoa", control: dict | None = None,
            data_name: str | None = None, theta0: np.ndarray | None = None) -> LmmResult:
        """Optimize theta from the moment start computed from the blocks (``control["start"]
        = "moments"``, default) or lme4's identity start (``"identity"``), or ``theta0``;
        ``control["polish"]`` as in memory (:meth:`LmmModel.optimize`)."""
        opt, theta = self.optimize(optimizer, control, theta0)
        return assemble_aggregated(self, theta, self.solve(theta), opt, data_name)


def assemble_aggregated(model: AggregatedModel, theta, sol, opt, data_name) -> LmmResult:
    """The frozen result; fitted values and residuals are not materialized (``None``):
    ``result.write_fitted(path)`` writes them to Parquet."""
    terms, perm, reml, p = model.terms, model.perm, model.reml, len(model.fixed_names)
    n = model.blocks.n
    dof = n - p if reml else n
    sigma = float(np.sqrt(sol.pwrss / dof))
    objective = float(opt.fmin)
    ml_dev = float(sol.logdet_L + n * np.log(2 * np.pi * sigma**2) + sol.pwrss / sigma**2
                   - model.blocks.sum_log_weights)
    npar = p + len(theta) + 1
    loglik = -objective / 2
    vcov = sigma**2 * sol.RX_inv_cov
    names = _labels(model.fixed_names)
    varcorr, _ = _varcorr(terms, theta, sigma)
    ranef, ranef_sd, ranef_cov = _ranef(terms, perm, sol, sigma)
    singular = _is_singular(theta, model.lower)
    if not opt.converged:
        warnings.warn(f"the optimizer did not converge (status {opt.status} after {opt.feval} "
                      "evaluations)", ConvergenceWarning, stacklevel=3)
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
        nobs=n, n_dropped=model.n_dropped, ngroups={t.group: t.nlevels for t in terms},
        ranef=ranef, ranef_sd=ranef_sd, ranef_cov=ranef_cov, fitted=None,
        residuals=None, scaled_residuals=None, converged=opt.converged, singular=singular,
        optsum=opt, dropped_columns=(), data_name=data_name, weights_used=model.weights_used,
        model=model)
