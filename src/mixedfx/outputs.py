"""What every fitted result offers users beyond its numbers: tidy tables, notebook HTML and
saving. A mixin of the frozen result classes (LMM, GLMM, PQL), so each gets the same
methods from one place."""

from __future__ import annotations

import pandas as pd


class ResultOutputs:
    """Methods shared by fitted results: ``tidy``, ``glance``, ``_repr_html_``, ``save``."""

    def tidy(self, **kwargs) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's tidy; see :func:`mixedfx.tidy.tidy`."""
        from .tidy import tidy

        return tidy(self, **kwargs)

    def glance(self) -> pd.DataFrame:
        """One row for the model, as broom.mixed's glance; see :func:`mixedfx.tidy.glance`."""
        from .tidy import glance

        return glance(self)

    def _repr_html_(self) -> str:
        from .html import result_html

        return result_html(self)

    def save(self, path) -> object:
        """Write the result to a JSON file that loads without running code (see
        :mod:`mixedfx.io`); read it back with :func:`mixedfx.load`."""
        from .io import save

        return save(self, path)
