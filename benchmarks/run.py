"""Run the benchmarks and print one table: ``python -m benchmarks.run [--quick] [--only TEXT]``.

Rows are cases from every topic module in this package that defines ``cases(quick)``;
columns are mixedfx and each peer that is installed (``mixedlm``, ``statsmodels``, R's lme4 /
nlme via ``Rscript``). Each cell is the best wall time in seconds after import, data built
outside the timed region, and the peer's check value (objective or log-likelihood) so the
reader sees that the fits agree.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from dataclasses import replace

from threadpoolctl import threadpool_limits

import benchmarks

from .common import Case, Timing, time_r, time_runner


def discover(quick: bool) -> list[Case]:
    """All cases of all topic modules, in module-name order (``lmm`` first)."""
    names = sorted((m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                    if m.name not in {"common", "run"}), key=lambda n: (n != "lmm", n))
    out: list[Case] = []
    for name in names:
        mod = importlib.import_module(f"benchmarks.{name}")
        if hasattr(mod, "cases"):
            out.extend(mod.cases(quick))
    return out


def fmt(t: Timing) -> str:
    if t.seconds is None:
        return t.note or "-"
    secs = f"{t.seconds * 1e3:.1f} ms" if t.seconds < 1 else f"{t.seconds:.2f} s"
    return secs if t.value is None else f"{secs} [{t.value:.6g}]"


def table(rows: list[tuple[str, dict[str, Timing]]], peers: list[str]) -> str:
    head = ["case", *peers]
    cells = [[name, *(fmt(res.get(p, Timing(None))) for p in peers)] for name, res in rows]
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in cells]
    return "\n".join([line, sep, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default="", help="run cases whose name contains this text")
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    ap.add_argument("--no-peers", action="store_true", help="time mixedfx only")
    ap.add_argument("--all-peers", action="store_true",
                    help="also run peers marked slow for a case (can take many minutes)")
    args = ap.parse_args(argv)
    import mixedfx  # noqa: F401  (import and numba compilation outside the timings)

    rows, peers = [], ["mixedfx"]
    for case in discover(args.quick):
        if args.only and args.only.lower() not in case.name.lower():
            continue
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        data = case.setup()
        results: dict[str, Timing] = {}
        with threadpool_limits(args.threads):
            for peer, fn in case.runners.items():
                if peer != "mixedfx" and args.no_peers:
                    continue
                peers += [peer] if peer not in peers else []
                if peer in case.slow_peers and not args.all_peers:
                    results[peer] = Timing(None, None, "skipped (slow; --all-peers)")
                    continue
                if peer == "mixedfx" and case.repeats > 1:
                    fn(data)  # warm-up: numba dispatch and caches, as "after import"
                results[peer] = time_runner(fn, data, case.repeats if peer == "mixedfx" else 1)
        if case.r_code and not args.no_peers:
            if "R" in case.slow_peers and not args.all_peers:
                results["R"] = Timing(None, None, "skipped (slow; --all-peers)")
            else:
                results["R"] = time_r(case, data, args.threads)
            peers += ["R"] if "R" not in peers else []
        for label, (code, packages) in case.r_peers.items():
            if args.no_peers:
                break
            if label in case.slow_peers and not args.all_peers:
                results[label] = Timing(None, None, "skipped (slow; --all-peers)")
            else:
                results[label] = time_r(replace(case, r_code=code, r_packages=packages), data,
                                        args.threads)
            peers += [label] if label not in peers else []
        rows.append((case.name, results))
    print(table(rows, peers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
