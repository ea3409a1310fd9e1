"""Inference for fitted models: denominator degrees of freedom, F tests, intervals,
likelihood-ratio comparisons, the parametric bootstrap and variance decomposition.

Each job lives in its own module; results import them lazily.
"""
