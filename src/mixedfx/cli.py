"""The ``mixedfx`` command: fit models from the shell and list bundled data."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import pandas as pd

from . import datasets
from .errors import MixedFXError


def read_data(source: str) -> tuple[pd.DataFrame, str]:
    """Read a CSV or Parquet file, or a bundled data set by name."""
    if os.path.exists(source):
        lower = source.lower()
        if lower.endswith((".parquet", ".pq")):
            return pd.read_parquet(source), os.path.basename(source)
        if lower.endswith((".csv", ".txt", ".csv.gz")):
            return pd.read_csv(source), os.path.basename(source)
        raise MixedFXError(f"cannot read '{source}': use a .csv or .parquet file")
    try:
        return datasets.load(source), source
    except KeyError as exc:
        raise MixedFXError(f"'{source}' is neither a file nor a bundled data set. "
                           f"{exc.args[0]}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedfx", description="Fit mixed models with lme4 "
                                     "formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a linear mixed model and print its summary")
    fit.add_argument("formula", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
    fit.add_argument("--data", required=True, help="CSV/Parquet path or bundled data set name")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    fit.add_argument("--offset", help="column of offsets")
    fit.add_argument("--json", action="store_true", help="print the result as JSON")
    fit.add_argument("--confint", choices=["profile", "wald", "bootstrap"],
                     help="also print 95%% confidence intervals (lme4's confint)")
    sub.add_parser("datasets", help="list the bundled data sets")
    return parser


def _fit(args: argparse.Namespace) -> int:
    from .lmm import lmm

    data, name = read_data(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lmm(args.formula, data, reml=not args.ml, weights=args.weights,
                  offset=args.offset, data_name=name)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    ci = res.confint(method=args.confint, seed=1) if args.confint == "bootstrap" else \
        res.confint(method=args.confint) if args.confint else None
    if args.json:
        out = res.to_dict()
        if ci is not None:
            out["confint"] = {"method": args.confint, "names": [str(i) for i in ci.index],
                              "lower": [None if pd.isna(v) else float(v) for v in ci.lower],
                              "upper": [None if pd.isna(v) else float(v) for v in ci.upper]}
        print(json.dumps(out, indent=1))
    else:
        print(res.summary())
        if ci is not None:
            print(f"\nConfidence intervals (95%, {args.confint}):")
            print(ci.to_string(float_format=lambda v: f"{v:.5g}", na_rep=""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mixedfx`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "datasets":
            for name in datasets.names():
                df = datasets.load(name)
                print(f"{name:12s} {len(df):6d} rows  {', '.join(map(str, df.columns))}")
            return 0
        return _fit(args)
    except MixedFXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
