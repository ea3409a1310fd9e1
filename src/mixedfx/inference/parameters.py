"""The variance parameters on lme4's profile scale: standard deviations, correlations, sigma.

lme4's ``confint(..., oldNames=FALSE)`` names them ``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject`` (per term, the lower triangle of the
covariance matrix by column) and ``sigma``. This module converts between that vector and
(theta, sigma), where theta holds the lower triangles of the relative covariance factors.
"""

from __future__ import annotations

import numpy as np

from ..design.reterm import lower_indices


class SdCorScale:
    """Conversion between (theta, sigma) and lme4's (sd, cor, ..., sigma) vector.

    Parameters
    ----------
    terms : sequence of ReTerm
        Random terms in display order (as ``LmmModel.terms``).
    """

    def __init__(self, terms) -> None:
        self.dims = [t.dim for t in terms]
        names, lower, upper, seen = [], [], [], {}
        for t in terms:
            k = seen.get(t.group, 0)
            seen[t.group] = k + 1
            group = t.group if k == 0 else f"{t.group}.{k}"
            rows, cols = lower_indices(t.dim)
            for r, c in zip(rows, cols, strict=True):
                if r == c:
                    names.append(f"sd_{t.columns[r]}|{group}")
                    lower.append(0.0)
                    upper.append(np.inf)
                else:
                    names.append(f"cor_{t.columns[r]}.{t.columns[c]}|{group}")
                    lower.append(-1.0)
                    upper.append(1.0)
        self.names = _lme4_names(names, terms) + ["sigma"]
        self.lower = np.array(lower + [0.0])
        self.upper = np.array(upper + [np.inf])
        self._lower_idx = [lower_indices(d) for d in self.dims]

    @property
    def size(self) -> int:
        """Number of parameters, sigma included."""
        return len(self.names)

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """(sd, cor, ..., sigma) from theta (display order) and sigma."""
        out, start = [], 0
        for d, (rows, cols) in zip(self.dims, self._lower_idx, strict=True):
            nt = len(rows)
            T = np.zeros((d, d))
            T[rows, cols] = theta[start : start + nt]
            start += nt
            cov = sigma**2 * T @ T.T
            sd = np.sqrt(np.diag(cov))
            for r, c in zip(rows, cols, strict=True):
                if r == c:
                    out.append(sd[r])
                else:
                    denom = sd[r] * sd[c]
                    out.append(cov[r, c] / denom if denom > 0 else 0.0)
        return np.array(out + [sigma])

    def to_theta(self, par: np.ndarray) -> np.ndarray | None:
        """theta (display order) from (sd, cor, ..., sigma); None when a correlation matrix
        is not positive definite or sigma is not positive."""
        sigma = par[-1]
        if not sigma > 0:
            return None
        out, start = [], 0
        for d, (rows, cols) in zip(self.dims, self._lower_idx, strict=True):
            nt = len(rows)
            seg = par[start : start + nt]
            start += nt
            if d == 1:
                out.append(seg / sigma)
                continue
            if d == 2:  # closed form: T = diag(sd) chol([[1, c], [c, 1]]) / sigma
                s1, c, s2 = seg
                if not -1.0 <= c <= 1.0:
                    return None
                out.append(np.array([s1, s2 * c, s2 * np.sqrt(1.0 - c * c)]) / sigma)
                continue
            C = np.eye(d)
            sd = np.empty(d)
            for v, r, c in zip(seg, rows, cols, strict=True):
                if r == c:
                    sd[r] = v
                else:
                    C[r, c] = C[c, r] = v
            Lc = psd_cholesky(C)
            if Lc is None:
                return None
            T = sd[:, None] * Lc / sigma
            out.append(T[rows, cols])
        return np.concatenate(out)


def psd_cholesky(C: np.ndarray, tol: float = 1e-12) -> np.ndarray | None:
    """Lower Cholesky factor of a positive semi-definite matrix (zero columns where a pivot
    vanishes, as at a correlation of +-1); None when C is not semi-definite."""
    d = C.shape[0]
    L = np.zeros_like(C, dtype=float)
    for j in range(d):
        pivot = C[j, j] - L[j, :j] @ L[j, :j]
        if pivot < -tol:
            return None
        if pivot <= tol:
            rest = C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-8):
                return None
            continue
        L[j, j] = np.sqrt(pivot)
        L[j + 1 :, j] = (C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _lme4_names(suffixed: list[str], terms) -> list[str]:
    """lme4's names use the plain group (``sd_Days|Subject`` for ``(Days || Subject)``);
    where that would repeat a name, keep the VarCorr group label (``Subject.1``)."""
    plain, k = [], 0
    for t in terms:
        for _ in range(t.ntheta):
            head = suffixed[k].rsplit("|", 1)[0]
            plain.append(f"{head}|{t.group}")
            k += 1
    counts = {n: plain.count(n) for n in plain}
    return [p if counts[p] == 1 else s for p, s in zip(plain, suffixed, strict=True)]
