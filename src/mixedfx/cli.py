"""The ``mixedfx`` command: fit models from the shell and list bundled data."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
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


PROGRESS_ROWS = 100_000
"""Fits of at least this many rows report their start and duration on stderr."""

_STRUCTURE_CALL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:\((.*)\))?\s*$")


def parse_structure(text: str, option: str) -> object:
    """A residual structure from its command-line spelling, without evaluating code.

    ``AR1``, ``AR1(group=Mare)``, ``CAR1(time=Time, group=Subject)``, ``CompSymm(Subject)``,
    ``VarIdent(Sex)``, ``VarPower(fitted)``: positional arguments fill the fields in order.
    """
    from . import residual

    allowed = {"--correlation": ("AR1", "CAR1", "CompSymm"),
               "--variance": ("VarIdent", "VarPower")}[option]
    match = _STRUCTURE_CALL.match(text)
    if match is None or match.group(1) not in allowed:
        raise MixedFXError(f"{option} '{text}' is not understood: use one of "
                           f"{', '.join(allowed)}, e.g. {allowed[0]}(group=Subject)")
    cls = getattr(residual, match.group(1))
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, str] = {}
    args = [a.strip() for a in (match.group(2) or "").split(",") if a.strip()]
    for k, arg in enumerate(args):
        key, sep, value = arg.partition("=")
        key, value = (key.strip(), value.strip()) if sep else (names[min(k, len(names) - 1)],
                                                                 arg)
        if key not in names:
            raise MixedFXError(f"{option}: {cls.__name__} has no argument '{key}'; its "
                               f"arguments are {', '.join(names)}")
        kwargs[key] = value.strip("'\"")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise MixedFXError(f"{option} '{text}': {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedfx", description="Fit mixed models with lme4 "
                                     "formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a linear (or, with --family, generalized) mixed "
                         "model and print its summary")
    fit.add_argument("formula", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
    fit.add_argument("--data", required=True, help="CSV/Parquet path or bundled data set name")
    fit.add_argument("--out-of-core", action="store_true", dest="out_of_core",
                     help="aggregate the model's blocks from a Parquet file, glob or "
                          "directory with DuckDB instead of loading the rows (LMMs; needs "
                          "duckdb)")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--weights", help="column of prior weights")
    fit.add_argument("--offset", help="column of offsets")
    fit.add_argument("--json", action="store_true", help="print the result as JSON")
    fit.add_argument("--confint", choices=["profile", "wald", "bootstrap"],
                     help="also print 95%% confidence intervals (lme4's confint)")
    fit.add_argument("--nsim", type=int, default=500,
                     help="bootstrap replicates of --confint bootstrap (default 500)")
    fit.add_argument("--seed", type=int, default=1,
                     help="random seed of --confint bootstrap (default 1)")
    fit.add_argument("--family", help="fit a GLMM of this family: binomial, poisson, Gamma, "
                     "inverse.gaussian, negbinomial")
    fit.add_argument("--link", help="link function of --family (its default otherwise)")
    fit.add_argument("--method", choices=["laplace", "agq", "pql"], default="laplace",
                     help="GLMM estimation method (default laplace)")
    fit.add_argument("--n-agq", type=int, default=1, dest="n_agq",
                     help="quadrature points per level with --method agq")
    fit.add_argument("--ddf", choices=["satterthwaite", "kenward-roger", "asymptotic"],
                     help="also print the fixed-effects tests with these denominator df")
    fit.add_argument("--correlation", metavar="STRUCTURE",
                     help="residual correlation: AR1, CAR1(time=t), CompSymm, with group=g")
    fit.add_argument("--variance", metavar="FUNCTION", action="append",
                     help="residual variance function: VarIdent(column) or VarPower(covariate)"
                          "; may be repeated")
    fit.add_argument("--plot", choices=["caterpillar", "residuals", "profile", "group_lines"],
                     help="also draw a plot of the fit (needs matplotlib)")
    fit.add_argument("--out", help="image file of --plot (default: <plot>.png)")
    fit.add_argument("--save", metavar="PATH", help="save the fitted result (mixedfx.load)")
    fit.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    sub.add_parser("datasets", help="list the bundled data sets")
    return parser


def _out_of_core_source(args: argparse.Namespace, correlation, variance) -> tuple[str, str]:
    """The Parquet path or glob of ``--out-of-core``, checked before any work."""
    if args.family is not None or correlation is not None or variance:
        raise MixedFXError("--out-of-core fits linear mixed models without residual "
                           "structures; drop --family, --correlation and --variance")
    if os.path.isdir(args.data):  # every *.parquet file below it
        return args.data, os.path.basename(os.path.normpath(args.data))
    if not args.data.lower().endswith((".parquet", ".pq")):
        raise MixedFXError(f"--out-of-core reads Parquet files: '{args.data}' is not a "
                           ".parquet path, glob or directory")
    if not any(c in args.data for c in "*?[") and not os.path.exists(args.data):
        raise MixedFXError(f"--out-of-core: no such file '{args.data}'")
    return args.data, os.path.basename(args.data)


def _fit(args: argparse.Namespace) -> int:
    from .lmm import lmm

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    correlation = parse_structure(args.correlation, "--correlation") if args.correlation \
        else None
    variance = [parse_structure(v, "--variance") for v in args.variance or []] or None
    if args.out_of_core:
        data, name = _out_of_core_source(args, correlation, variance)
        progress(f"aggregating the model's blocks out of core from {args.data} ...")
        nrows = PROGRESS_ROWS  # unknown before aggregation: always report
    else:
        data, name = read_data(args.data)
        nrows = len(data)
    start = time.perf_counter()
    if nrows >= PROGRESS_ROWS and not args.out_of_core:
        progress(f"fitting {nrows:,} rows ...")
    if args.family is None and (args.link or args.method != "laplace" or args.n_agq != 1):
        raise MixedFXError("--link, --method and --n-agq apply to GLMMs: give --family too")
    if args.family is not None and (correlation is not None or variance):
        raise MixedFXError("--correlation and --variance apply to linear mixed models; drop "
                           "--family or the structure")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.family is not None:
            from .glmm import glmm

            try:
                res = glmm(args.formula, data, family=args.family, link=args.link,
                           method=args.method, n_agq=args.n_agq, weights=args.weights,
                           offset=args.offset, data_name=name)
            except ValueError as exc:  # unknown family, link or method
                raise MixedFXError(str(exc)) from None
        else:
            res = lmm(args.formula, data, reml=not args.ml, weights=args.weights,
                      offset=args.offset, correlation=correlation, variance=variance,
                      data_name=name)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if nrows >= PROGRESS_ROWS:
        progress(f"fitted in {time.perf_counter() - start:.2f} s "
                 f"({res.optsum.feval} evaluations)")
    ci = None
    if args.confint:
        if not callable(getattr(res, "confint", None)):
            raise MixedFXError(f"--confint is not available for {type(res).__name__} (a "
                               f"{args.family} GLMM); drop --confint")
        if args.confint != "wald":
            progress(f"computing {args.confint} intervals ...")
        if args.confint == "bootstrap":
            if args.nsim < 2:
                raise MixedFXError(f"--nsim {args.nsim}: give at least 2 bootstrap replicates")
            ci = res.confint(method="bootstrap", nsim=args.nsim, seed=args.seed,
                             progress=False if args.quiet else None)
        else:
            ci = res.confint(method=args.confint)
        progress(f"{args.confint} intervals done in {time.perf_counter() - start:.2f} s "
                 "since the start of the fit")
    tests = None
    if args.ddf:
        if not hasattr(res, "coef_table"):
            raise MixedFXError(f"--ddf is not available for {type(res).__name__}")
        if args.family is not None and args.ddf != "asymptotic":
            raise MixedFXError(f"--ddf {args.ddf}: GLMM fixed effects are tested by z "
                               "statistics (lme4's glmer); use --ddf asymptotic")
        try:
            tests = res.coef_table(args.ddf) if args.family is None else res.coef_table()
        except (ValueError, MixedFXError) as exc:
            raise MixedFXError(f"--ddf {args.ddf}: {exc}") from None
    if args.plot:
        from . import plot

        out = args.out or f"{args.plot}.png"
        if args.plot == "profile" and callable(getattr(res, "profile", None)):
            progress("profiling the likelihood ...")
        getattr(plot, args.plot)(res).savefig(out, dpi=110)
        progress(f"wrote {out}")
    if args.save:
        res.save(args.save)
        progress(f"saved the result to {args.save}")
    if args.json:
        out = res.to_dict()
        if ci is not None:
            out["confint"] = {"method": args.confint, "names": [str(i) for i in ci.index],
                              "lower": [None if pd.isna(v) else float(v) for v in ci.lower],
                              "upper": [None if pd.isna(v) else float(v) for v in ci.upper]}
        if tests is not None:
            out["coef_table"] = {"ddf": args.ddf, "terms": [str(i) for i in tests.index],
                                 **{c: [None if pd.isna(v) else float(v) for v in tests[c]]
                                    for c in tests.columns}}
        print(json.dumps(out, indent=1))
    else:
        print(res.summary())
        if tests is not None:
            print(f"\nFixed effects ({args.ddf} df):")
            print(tests.to_string(float_format=lambda v: f"{v:.5g}"))
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
    except ImportError as exc:  # an optional dependency (matplotlib for --plot)
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:  # output files
        print(f"error: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
