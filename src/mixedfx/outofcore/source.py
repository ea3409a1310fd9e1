"""Resolve Parquet paths and globs, and check their schemas agree before any fitting."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import DataError


def parquet_files(path: str | os.PathLike) -> list[str]:
    """The Parquet files a path names: a file, a directory (all ``*.parquet`` below it)
    or a glob. Raises DataError when nothing matches."""
    text = str(path)
    if os.path.isdir(text):
        files = sorted(glob.glob(os.path.join(text, "**", "*.parquet"), recursive=True))
    elif any(ch in text for ch in "*?["):
        files = sorted(glob.glob(text, recursive=True))
    else:
        files = [text] if os.path.isfile(text) else []
    if not files:
        raise DataError(f"no Parquet file matches '{text}': check the path or glob "
                        "(a directory is searched for *.parquet files)")
    return files


def _schema(pq, path: str):
    """The Parquet schema of ``path``; a DataError when it is not a Parquet file (a CSV)."""
    import pyarrow as pa

    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"'{path}' is not a Parquet file ({exc}): a path given as data must "
                        "name Parquet files; read a CSV file with pandas.read_csv or "
                        "polars.read_csv and pass the data frame") from None


def check_schemas(files: list[str], columns: list[str]) -> dict[str, str]:
    """Check every file has ``columns`` with one type across files; return column -> type.

    Only the files' footers are read (pyarrow). Raises DataError naming the files and
    columns that are missing or whose types differ.
    """
    import pyarrow.parquet as pq

    types: dict[str, dict[str, list[str]]] = {c: {} for c in columns}
    missing: dict[str, list[str]] = {}
    for f in files:
        schema = _schema(pq, f)
        names = set(schema.names)
        for c in columns:
            if c not in names:
                missing.setdefault(c, []).append(Path(f).name)
            else:
                t = str(schema.field(c).type)
                if t.startswith("dictionary<values=string"):
                    t = "string"
                if t == "large_string":
                    t = "string"
                types[c].setdefault(t, []).append(Path(f).name)
    if missing:
        detail = "; ".join(f"'{c}' missing from {_few(fs)}" for c, fs in missing.items())
        raise DataError(f"columns missing from some Parquet files: {detail}")
    mixed = {c: t for c, t in types.items() if len(t) > 1}
    if mixed:
        detail = "; ".join(f"'{c}' is " + ", ".join(f"{t} in {_few(fs)}" for t, fs in ts.items())
                           for c, ts in mixed.items())
        raise DataError(f"column types differ across Parquet files: {detail}; rewrite the "
                        "files with one type per column")
    return {c: next(iter(t)) for c, t in types.items()}


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
