"""Classic mixed-model data sets bundled with mixedfx.

The CSV files were written from the R packages that distribute them (lme4, nlme); see
``data/PROVENANCE.md``. Factor columns are returned as pandas categoricals with R's level
order, so that term names (``service1``, ``SexFemale``) match lme4's output.

:mod:`mixedfx.datasets.simulate` draws the simulated data sets of the worked examples
(students in schools, nested districts, crossed patents, income slopes, binary outcomes).
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from . import simulate

__all__ = ["load", "names", "provenance", "simulate"]


def _data_dir():
    return resources.files(__package__).joinpath("data")


@lru_cache(maxsize=1)
def _schema() -> dict:
    with _data_dir().joinpath("schema.json").open() as fh:
        schema = json.load(fh)
    schema.pop("_comment", None)
    return schema


def names() -> list[str]:
    """List the names of the bundled data sets.

    Returns
    -------
    list of str
        Names accepted by :func:`load`, sorted case-insensitively.
    """
    files = [p.name[:-4] for p in _data_dir().iterdir() if p.name.endswith(".csv")]
    return sorted(files, key=str.lower)


def provenance() -> str:
    """Return the provenance note of the bundled data (sources and references)."""
    return _data_dir().joinpath("PROVENANCE.md").read_text()


def _resolve(name: str) -> str:
    available = names()
    if name in available:
        return name
    lower = {n.lower(): n for n in available}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise KeyError(f"no bundled data set '{name}'.{hint} Available: {', '.join(available)}.")


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a pandas DataFrame.

    Parameters
    ----------
    name : str
        A name from :func:`names` (case-insensitive), e.g. ``"sleepstudy"``.

    Returns
    -------
    pandas.DataFrame
        A fresh copy; factor columns are categoricals with R's level order.
    """
    name = _resolve(name)
    with _data_dir().joinpath(f"{name}.csv").open() as fh:
        df = pd.read_csv(fh)
    for col, levels in _schema().get(name, {}).items():
        values = df[col]
        if levels == "factor":
            levels = sorted(values.dropna().unique().tolist())
        df[col] = pd.Categorical(values.astype(str) if isinstance(levels[0], str) and
                                 values.dtype.kind in "iuf" else values, categories=levels)
    return df
