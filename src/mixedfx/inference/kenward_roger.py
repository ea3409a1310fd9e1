"""Kenward-Roger adjusted covariance and denominator degrees of freedom.

Kenward and Roger (1997), in the form of pbkrtest (Halekoh and Hojsgaard 2014). The
marginal covariance of y is linear in the variance parameters sigma_k (every variance and
covariance of each random term, and the residual variance):

    V = sum_k sigma_k G_k,   G_k = Z_g (E_ab + E_ba) Z_g'  (or E_aa),  G_resid = W^{-1}.

With Phi = (X'V^{-1}X)^{-1}, P_k = -X'V^{-1}G_kV^{-1}X, Q_kl = X'V^{-1}G_kV^{-1}G_lV^{-1}X and
W the asymptotic covariance of the sigma_k (twice the inverse of the REML information
tr(V^{-1}G_kV^{-1}G_l) - 2 tr(Phi Q_kl) + tr(Phi P_k Phi P_l)), the adjusted covariance is

    Phi_A = Phi + 2 Phi [sum_kl W_kl (Q_kl - P_k Phi P_l)] Phi

(the second-derivative terms R_kl vanish for linear V). For a contrast matrix L (q rows)
the statistic F = lambda (L b)'(L Phi_A L')^{-1}(L b) / q has an approximate F(q, m)
distribution with m and the scale lambda from the moment matching of the paper.

Only V and its inverse are dense n x n matrices (each G_k enters through the Z blocks of
its term, n x levels): 4,000 observations take about 6 s. The method is meant for the small
samples where the adjustment matters, and refuses more than ``MAX_ROWS`` observations (use
Satterthwaite).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..design.reterm import theta_to_factor
from ..errors import DataError

MAX_ROWS = 4000
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class KenwardRoger:
    """The pieces of the Kenward-Roger method for one REML fit.

    Attributes
    ----------
    vcov : numpy.ndarray
        Phi, the unadjusted covariance of beta at the estimates.
    vcov_adjusted : numpy.ndarray
        Phi_A, the Kenward-Roger adjusted covariance.
    P : list of numpy.ndarray
        P_k for each variance parameter.
    W : numpy.ndarray
        Asymptotic covariance of the variance parameters.
    """

    vcov: np.ndarray
    vcov_adjusted: np.ndarray
    P: list
    W: np.ndarray

    def _moments(self, L: np.ndarray) -> tuple[float, float, int]:
        """(A1, A2, q) of the paper for the contrast rows L."""
        Phi = self.vcov
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        TP = Theta @ Phi
        U = [TP @ Pk @ Phi for Pk in self.P]
        A1 = A2 = 0.0
        for i in range(len(U)):
            for j in range(i, len(U)):
                e = 1.0 if i == j else 2.0
                A1 += e * self.W[i, j] * np.trace(U[i]) * np.trace(U[j])
                A2 += e * self.W[i, j] * float(np.sum(U[i] * U[j].T))
        return A1, A2, np.linalg.matrix_rank(L)

    def ddf_and_scale(self, L: np.ndarray) -> tuple[float, float]:
        """Denominator df m and F scaling lambda for the contrast rows L."""
        L = np.atleast_2d(np.asarray(L, float))
        A1, A2, q = self._moments(L)
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        V1, V2 = 1 - c2 * B, 1 - c3 * B
        ratio = (1 - A2 / q) / V1 if V1 != 0 else 0.0
        rho = ratio**2 * V0 / V2 / q
        m = 4 + (q + 2) / (q * rho - 1)
        scale = 1.0 if abs(m - 2) < 1e-2 else m * (1 - A2 / q) / (m - 2)
        return float(m), float(scale)

    def single_df(self, L: np.ndarray) -> float:
        """Denominator df of a single contrast (the t test's df)."""
        return self.ddf_and_scale(L)[0]

    def f_test(self, L: np.ndarray, beta: np.ndarray) -> dict:
        """Scaled F test of L beta = 0 with the adjusted covariance."""
        L = np.atleast_2d(np.asarray(L, float))
        m, scale = self.ddf_and_scale(L)
        q = np.linalg.matrix_rank(L)
        Lb = L @ beta
        wald = float(Lb @ np.linalg.solve(L @ self.vcov_adjusted @ L.T, Lb))
        F = scale * wald / q
        return {"F": F, "num_df": q, "den_df": m, "p_value": float(stats.f.sf(F, q, m)),
                "F_unscaled": wald / q}


@dataclass(frozen=True)
class _Structure:
    """V = sum_k sigma_k G_k in low-rank form.

    ``Z`` holds one dense (n, levels) block per (random term, column): row r has the
    column's value in its group's column. A random-effects parameter k has
    G_k = sum of Z_x Z_y' over its ``pairs[k]`` ((a, a) for a variance, (a, b) and (b, a)
    for a covariance); the residual parameter (``pairs[k] is None``) has G = diag(d),
    d = 1 / prior weights.
    """

    Z: list
    pairs: list
    sigma: np.ndarray
    d: np.ndarray


def _structure(res) -> _Structure:
    """Low-rank pieces of the marginal covariance, random terms then the residual."""
    model = res.model
    n = model.blocks.n
    rows = np.arange(n)
    Z, pairs, sig = [], [], []
    start = 0
    for t in model.terms:
        dim = t.dim
        T = theta_to_factor(np.asarray(res.theta)[start:start + t.ntheta], dim)
        start += t.ntheta
        cov = res.sigma**2 * T @ T.T
        first = len(Z)
        for a in range(dim):
            block = np.zeros((n, t.nlevels))
            block[rows, t.codes] = t.Z[:, a]
            Z.append(block)
        for b in range(dim):
            for a in range(b, dim):
                x, y = first + a, first + b
                pairs.append([(x, x)] if a == b else [(x, y), (y, x)])
                sig.append(cov[a, b])
    pairs.append(None)
    sig.append(res.sigma**2)
    return _Structure(Z, pairs, np.array(sig), 1.0 / np.asarray(model.design.weights, float))


def kenward_roger_parts(res) -> KenwardRoger:
    """Adjusted covariance and the pieces of the df of a REML fit (cached per result).

    Only V and V^{-1} are n x n: every G_k enters through Z blocks (n x levels), so the
    cost is one dense inverse plus O(n^2 (levels + p)) per parameter.
    """
    cached = _CACHE.get(res)
    if cached is not None:
        return cached
    model = getattr(res, "model", None)
    if model is None or not hasattr(model, "blocks") or hasattr(model, "structures"):
        raise DataError("Kenward-Roger needs an LMM fitted with sigma^2 I residuals; "
                        "residual-structure fits (correlation=, variance=) support "
                        "ddf='asymptotic' only")
    if getattr(model, "X", None) is None or getattr(model, "terms", None) is None:
        raise DataError("Kenward-Roger needs the per-row design of the fit; an out-of-core "
                        "fit holds aggregated cross-products only: use ddf='satterthwaite'")
    if not res.reml:
        raise DataError("Kenward-Roger is defined for REML fits; refit with reml=True or "
                        "use ddf='satterthwaite'")
    n = model.blocks.n
    if n > MAX_ROWS:
        raise DataError(f"Kenward-Roger works with dense {n} x {n} matrices here; above "
                        f"{MAX_ROWS} observations use ddf='satterthwaite'")
    X = np.asarray(model.X, float)
    st = _structure(res)
    V = np.diag(st.sigma[-1] * st.d)
    for pairs, s in zip(st.pairs[:-1], st.sigma[:-1], strict=True):
        for x, y in pairs:
            V += s * (st.Z[x] @ st.Z[y].T)
    Vinv = np.linalg.inv(V)
    Vinv = (Vinv + Vinv.T) / 2
    del V
    TT = Vinv @ X
    Phi = np.linalg.inv(X.T @ TT)
    VZ = [Vinv @ z for z in st.Z]
    C = {(x, y): st.Z[x].T @ VZ[y] for x in range(len(st.Z)) for y in range(len(st.Z))}

    def trace(i: int, j: int) -> float:
        """tr(V^-1 G_i V^-1 G_j)."""
        pi, pj = st.pairs[i], st.pairs[j]
        if pi is None and pj is None:
            return float(st.d @ (Vinv * Vinv) @ st.d)
        if pi is None or pj is None:
            pr = pj if pi is None else pi
            return float(sum(np.sum(VZ[y] * st.d[:, None] * VZ[x]) for x, y in pr))
        return float(sum(np.sum(C[y, u] * C[x, v]) for x, y in pi for u, v in pj))

    k = len(st.pairs)
    O = []  # G_k V^-1 X
    for pairs in st.pairs:
        if pairs is None:
            O.append(st.d[:, None] * TT)
        else:
            O.append(sum(st.Z[x] @ (st.Z[y].T @ TT) for x, y in pairs))
    P = [-(o.T @ TT) for o in O]
    P = [(p + p.T) / 2 for p in P]
    VO = [Vinv @ o for o in O]
    Q = {(i, j): O[i].T @ VO[j] for i in range(k) for j in range(i, k)}
    IE = np.empty((k, k))
    for i in range(k):
        PhiPi = Phi @ P[i]
        for j in range(i, k):
            IE[i, j] = IE[j, i] = (trace(i, j) - 2 * float(np.sum(Phi * Q[i, j]))
                                   + float(np.sum(PhiPi * (P[j] @ Phi))))
    W = 2 * (np.linalg.inv(IE) if np.min(np.abs(np.linalg.eigvalsh(IE))) > 1e-10
             else np.linalg.pinv(IE))
    U = np.zeros_like(Phi)
    for i in range(k):
        for j in range(i, k):
            term = W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
            U += term if i == j else term + term.T
    adjusted = Phi + 2 * Phi @ U @ Phi
    parts = KenwardRoger(vcov=Phi, vcov_adjusted=(adjusted + adjusted.T) / 2, P=P, W=W)
    _CACHE[res] = parts
    return parts
