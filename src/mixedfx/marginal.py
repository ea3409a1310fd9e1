"""Population (marginal) means of a GLMM: E[g^-1(eta + e)] with e ~ N(0, v).

For a row with fixed-effects linear predictor eta = x'beta (+ offset) and random-effects
design z, the random part z'u of the linear predictor is normal with mean 0 and variance
v = sum_k z_k' G_k z_k (independent terms add), so the population mean is a one-dimensional
normal integral whatever the number of terms and random effects:

    m(eta, v) = integral g^-1(eta + sqrt(v) t) phi(t) dt.

Closed forms where they exist: identity m = eta; log m = exp(eta + v/2) (lognormal mean);
probit m = Phi(eta / sqrt(1 + v)); sqrt (g^-1(x) = x^2) m = eta^2 + v. Otherwise
quadrature: Gauss-Hermite when the normal is narrow (sd <= 1: 40 nodes are exact to
1e-13 for the logit) and composite Gauss-Legendre on [-(8.5 + sd), 8.5 + sd] sd, with
panels 0.5 wide on the linear-predictor scale, when it is wide: a steep inverse link (logit
with sd 5 or 10) varies over a small part of a wide normal, where Gauss-Hermite's few
central nodes fall short (its error is 1e-3 at sd 10 with 100 nodes, the panels' 1e-14).
"""

from __future__ import annotations

import numpy as np
from scipy import special

GH_NODES = 40
GH_MAX_SD = 1.0
PANEL_WIDTH = 0.5  # on the linear-predictor scale
PANEL_RANGE = 8.5  # in standard deviations: normal tail mass beyond is 2e-17
CHUNK = 1 << 21  # integrand evaluations per block of rows

_gh_t, _gh_w = np.polynomial.hermite_e.hermegauss(GH_NODES)
_gh_w = _gh_w / np.sqrt(2 * np.pi)
_gl_t, _gl_w = np.polynomial.legendre.leggauss(8)

UNBOUNDED = ("inverse", "1/mu^2")


def link_name(link: object) -> str:
    """Name of a link object (its ``name`` attribute, or the text given)."""
    return link if isinstance(link, str) else str(getattr(link, "name", ""))


def closed_form(name: str, eta: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """The marginal mean in closed form for the link ``name``, or None if there is none."""
    if name == "identity":
        return eta.copy()
    if name == "log":
        return np.exp(eta + v / 2)
    if name == "probit":
        return special.ndtr(eta / np.sqrt(1 + v))
    if name == "sqrt":
        return eta**2 + v
    return None


def quadrature_nodes(sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal nodes t and weights w with sum w f(t) ~ E f(Z), chosen for a normal
    of standard deviation ``sd`` on the linear-predictor scale (see the module notes)."""
    if sd <= GH_MAX_SD:
        return _gh_t, _gh_w
    reach = PANEL_RANGE + sd  # an inverse link growing like exp shifts the mass by ~sd
    panels = max(8, int(np.ceil(2 * reach * sd / PANEL_WIDTH)))
    edges = np.linspace(-reach, reach, panels + 1)
    half, mid = np.diff(edges)[:, None] / 2, (edges[:-1] + edges[1:])[:, None] / 2
    t = (mid + half * _gl_t).ravel()
    w = (half * _gl_w).ravel() * np.exp(-t**2 / 2) / np.sqrt(2 * np.pi)
    return t, w


def quadrature_mean(linkinv, eta: np.ndarray, v: np.ndarray) -> np.ndarray:
    """E[linkinv(eta + sqrt(v) Z)] by quadrature, rows grouped by their variance (a model
    with random intercepts only has one), in blocks of rows to bound memory."""
    eta, sd = np.asarray(eta, float), np.sqrt(np.asarray(v, float))
    out = np.empty_like(eta)
    groups, inverse = np.unique(sd, return_inverse=True)
    for g, s in enumerate(groups):
        rows = np.flatnonzero(inverse == g)
        if s == 0:
            out[rows] = linkinv(eta[rows])
            continue
        t, w = quadrature_nodes(float(s))
        step = max(1, CHUNK // len(t))
        for start in range(0, len(rows), step):
            r = rows[start : start + step]
            out[r] = np.asarray(linkinv(eta[r, None] + s * t[None, :])) @ w
    return out


def marginal_mean(link: object, eta: object, v: object, *, method: str = "auto") -> np.ndarray:
    """Population mean E[g^-1(eta + e)], e ~ N(0, v), row by row.

    Parameters
    ----------
    link : link object
        Has ``linkinv(eta)`` and a ``name`` (``"logit"``, ``"log"``, ...).
    eta : array-like
        Fixed-effects linear predictor (with offset) per row.
    v : array-like
        Variance of the random part of the linear predictor per row, z'Gz summed over terms.
    method : {"auto", "quadrature"}
        ``auto`` uses the closed form when the link has one, ``quadrature`` always
        integrates numerically (to check the closed forms).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        For links whose inverse has a pole (``inverse``, ``1/mu^2``) while v > 0: the mean of
        g^-1 over a normal linear predictor does not exist.
    """
    eta = np.asarray(eta, dtype=float)
    v = np.broadcast_to(np.asarray(v, dtype=float), eta.shape)
    if np.any(v < 0):
        raise ValueError("variances of the random part must be non-negative")
    name = link_name(link)
    if name in UNBOUNDED and np.any(v > 0):
        raise ValueError(f"the marginal mean does not exist for the '{name}' link: its inverse "
                         "has a pole that a normal linear predictor reaches with positive "
                         "probability; use kind='fixed' or 'conditional', or a log link")
    if method == "auto":
        exact = closed_form(name, eta, v)
        if exact is not None:
            return exact
    elif method != "quadrature":
        raise ValueError(f"unknown method '{method}'; use 'auto' or 'quadrature'")
    return quadrature_mean(link.linkinv, eta, v)
