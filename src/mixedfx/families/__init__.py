"""GLM families and links: one small class each, used by every GLMM solver.

>>> from mixedfx.families import get_family
>>> fam = get_family("binomial", "probit")
>>> fam.link.name
'probit'
"""

from __future__ import annotations

from .family import Binomial, Family, Gamma, InverseGaussian, NegativeBinomial, Poisson
from .links import (
    LINKS,
    Cloglog,
    Identity,
    Inverse,
    InverseSquared,
    Link,
    Log,
    Logit,
    Probit,
    get_link,
)

FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial, "poisson": Poisson, "gamma": Gamma,
    "inverse.gaussian": InverseGaussian, "negative.binomial": NegativeBinomial,
}
_ALIASES = {
    "inverse_gaussian": "inverse.gaussian", "inversegaussian": "inverse.gaussian",
    "inverse gaussian": "inverse.gaussian", "negbinomial": "negative.binomial",
    "negative_binomial": "negative.binomial", "negativebinomial": "negative.binomial",
    "nbinom": "negative.binomial",
}


def family_key(family: str) -> str:
    """Canonical lower-case key of a family name (aliases resolved); ValueError when
    unknown, listing the valid names."""
    key = family.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        raise ValueError(f"unknown family '{family}'; valid families: binomial, poisson, "
                         "Gamma, inverse.gaussian, negbinomial")
    return key


def get_family(family: str | Family, link: str | Link | None = None, *,
               theta: float | None = None) -> Family:
    """A family object from its name and an optional link.

    Parameters
    ----------
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` (alias
        ``"inverse_gaussian"``), ``"negbinomial"`` (alias ``"negative.binomial"``; needs
        ``theta``), or a Family object (returned as is unless ``link`` differs).
    link : str or Link, optional
        The family's default link (R's) when None.
    theta : float, optional
        Negative binomial shape.

    Returns
    -------
    Family
    """
    if isinstance(family, Family):
        if link is None or get_link(link) == family.link:
            return family
        if isinstance(family, NegativeBinomial):
            return NegativeBinomial(family.theta, link)
        return type(family)(link)
    if not isinstance(family, str):
        raise TypeError(f"family must be a name or a Family object, not "
                        f"{type(family).__name__}")
    key = family_key(family)
    if key == "negative.binomial":
        if theta is None:
            raise ValueError("the negative binomial family needs its shape: "
                             "get_family('negbinomial', theta=...)")
        return NegativeBinomial(theta, link)
    return FAMILIES[key](link)


__all__ = [
    "FAMILIES", "LINKS", "Binomial", "Cloglog", "Family", "Gamma", "Identity", "Inverse",
    "InverseGaussian", "InverseSquared", "Link", "Log", "Logit", "NegativeBinomial", "Poisson",
    "Probit", "family_key", "get_family", "get_link",
]
