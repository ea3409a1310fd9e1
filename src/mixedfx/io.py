"""Saving and loading fitted results without executing code.

A saved result is one JSON document (UTF-8, ``.mfx.json`` by convention)::

    {"format": "mixedfx-result", "version": 1, "sha256": "<hex>", "content": {...}}

``content`` is the result encoded value by value with a small set of tagged forms (below);
``sha256`` is the SHA-256 of ``content`` serialized canonically (sorted keys, no spaces), so
a file edited by hand or truncated is refused with a :class:`~mixedfx.errors.DataError`.
Loading builds only the types listed here, through a fixed table of classes: nothing in the
file can name a module, import or call code (unlike pickle). Floats round-trip exactly:
numeric arrays are stored as their little-endian bytes in base64, scalars by Python's
shortest exact repr.

Tagged forms (a JSON object with a single ``$`` key):

- ``{"$float": "nan" | "inf" | "-inf"}``: non-finite floats.
- ``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}`` (keys of any encodable type).
- ``{"$array": {"dtype": "<f8", "shape": [...], "data": "<base64>"}}``: bool and numeric
  arrays; ``{"$objects": {"shape": [...], "items": [...]}}``: arrays of strings/objects.
- ``{"$index": {...}}``, ``{"$series": {...}}``, ``{"$frame": {...}}``,
  ``{"$categorical": {...}}``: pandas objects with their dtypes, names and index;
  ``{"$datetimes": {"ints": <$array of int64>, "dtype": "datetime64[us]"}}``: date,
  date-with-timezone and duration values as integers in their dtype's unit (NaT included).
- ``{"$record": {"type": "LmmResult", "fields": {...}}}``: a frozen dataclass of the fixed
  table (results, optimizer summaries, designs).
- ``{"$model": {...}}``: the LMM or GLMM a result was fitted from (formula, criterion or
  family, and design), so that a loaded result can still profile, bootstrap and predict on
  new data. A model with residual structures also stores the structures as given
  (``AR1``, ``CAR1``, ``CompSymm``, ``VarIdent``, ``VarPower`` records), their columns for the
  rows used, and the fitted values a ``VarPower("fitted")`` holds; loading binds them again.
  Models that are not stored (out-of-core fits; structures on columns of a type not listed
  here) load as a stand-in that says so when a method needs the model.
- ``{"$family": {"name": ..., "link": ..., "theta": ...}}``: a GLMM's family object,
  rebuilt by name through :func:`mixedfx.families.get_family`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

FORMAT = "mixedfx-result"
VERSION = 1


class MissingModel:
    """Stands in for the model of a loaded result whose model was not stored."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getattr__(self, name: str):
        raise DataError(f"this result was loaded from a file that does not hold its model "
                        f"({self.kind} models are not stored), so it cannot re-evaluate the "
                        "likelihood: refit the model to the data to profile, bootstrap or "
                        "predict on new data")

    def __repr__(self) -> str:
        return f"MissingModel({self.kind!r})"


def _records() -> dict[str, type]:
    """The fixed table of dataclasses a file may contain (name -> class)."""
    from .design.build import ModelDesign
    from .design.reterm import ReTerm
    from .optimize import OptSummary
    from .residual import AR1, CAR1, CompSymm, VarIdent, VarPower
    from .residual.model import StructureSource
    from .results import LmmResult

    table: dict[str, type] = {c.__name__: c for c in (LmmResult, OptSummary, ModelDesign,
                                                       ReTerm, AR1, CAR1, CompSymm, VarIdent,
                                                       VarPower, StructureSource)}
    from .glmm.pql_result import PqlResult
    from .glmm.result import GlmmResult

    table["GlmmResult"] = GlmmResult
    table["PqlResult"] = PqlResult
    return table


# ---------------------------------------------------------------- encoding

def _encode_array(a: np.ndarray) -> dict:
    if a.dtype.kind in "biufc":
        little = a.astype(a.dtype.newbyteorder("<"), copy=False)
        data = base64.b64encode(np.ascontiguousarray(little).tobytes()).decode("ascii")
        return {"$array": {"dtype": little.dtype.str, "shape": list(a.shape), "data": data}}
    return {"$objects": {"shape": list(a.shape), "items": [_encode(v) for v in a.ravel()]}}


def _encode_index(index: pd.Index) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {"$index": {"range": [index.start, index.stop, index.step],
                           "name": _encode(index.name)}}
    if isinstance(index, pd.MultiIndex):
        raise TypeError("MultiIndex is not supported in saved results")
    return {"$index": {"values": _encode_values(index), "dtype": str(index.dtype),
                       "name": _encode(index.name)}}


def _encode_values(values: pd.Series | pd.Index) -> dict:
    if values.dtype.kind in ("m", "M"):  # dates (tz-aware too) and durations
        return {"$datetimes": {"ints": _encode_array(np.asarray(values.array.asi8)),
                               "dtype": str(values.dtype)}}
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        return {"$categorical": {"codes": _encode_array(np.asarray(cat.codes)),
                                 "categories": _encode_index(cat.categories),
                                 "ordered": bool(cat.ordered)}}
    if values.dtype.kind in "biufc":
        return _encode_array(values.to_numpy())
    return _encode_array(np.asarray(values.to_numpy(dtype=object, na_value=None), dtype=object))


def _encode(value: object) -> object:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else {"$float": "nan" if math.isnan(v) else
                                          ("inf" if v > 0 else "-inf")}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"$dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, pd.Index):
        return _encode_index(value)
    if isinstance(value, pd.Series):
        return {"$series": {"values": _encode_values(value), "dtype": str(value.dtype),
                            "index": _encode_index(value.index), "name": _encode(value.name)}}
    if isinstance(value, pd.DataFrame):
        return {"$frame": {"columns": _encode_index(value.columns),
                           "index": _encode_index(value.index),
                           "data": [_encode_values(value.iloc[:, k])
                                    for k in range(value.shape[1])],
                           "dtypes": [str(t) for t in value.dtypes]}}
    if is_dataclass(value) and type(value).__name__ in _records():
        out = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if f.name == "model":
                out[f.name] = _encode_model(v)
            elif f.name == "family_object":
                out[f.name] = _encode_family(v)
            else:
                out[f.name] = _encode(v)
        return {"$record": {"type": type(value).__name__, "fields": out}}
    raise TypeError(f"cannot save a value of type {type(value).__name__}")


def _encode_model(model: object) -> object:
    from .glmm.model import GlmmModel
    from .lmm import LmmModel

    if model is None:
        return None
    if type(model) is LmmModel:
        return {"$model": {"formula": model.formula, "reml": bool(model.reml),
                           "design": _encode(model.design)}}
    if type(model) is GlmmModel:
        return {"$model": {"formula": model.formula, "family": _encode_family(model.family),
                           "design": _encode(model.design)}}
    source = getattr(model, "source", None)
    if type(model).__name__ == "StructuredModel" and source is not None:
        try:
            structures = _encode(source)
        except TypeError:  # e.g. a CAR1 time column of dates: not a storable type
            return {"$model": {"kind": type(model).__name__}}
        return {"$model": {"formula": model.formula, "reml": bool(model.reml),
                           "design": _encode(model.design), "structures": structures,
                           "fitted": _encode(model.fitted_cov),
                           "precompute": bool(model.precompute)}}
    return {"$model": {"kind": type(model).__name__}}


def _encode_family(family: object) -> object:
    if family is None:
        return None
    theta = getattr(family, "theta", None)
    return {"$family": {"name": family.name, "link": family.link.name,
                        "theta": None if theta is None else float(theta)}}


# ---------------------------------------------------------------- decoding

def _decode_array(spec: dict) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.kind not in "biufc":
        raise DataError(f"saved array has unsupported dtype {spec['dtype']!r}")
    raw = base64.b64decode(spec["data"].encode("ascii"), validate=True)
    shape = tuple(int(s) for s in spec["shape"])
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _decode_index(spec: dict) -> pd.Index:
    name = _decode(spec["name"])
    if "range" in spec:
        return pd.RangeIndex(*spec["range"], name=name)
    values = _decode_values(spec["values"], spec["dtype"])
    if isinstance(values, pd.Categorical):
        return pd.CategoricalIndex(values, name=name)
    return pd.Index(values, dtype=values.dtype, name=name)


def _decode_datetimes(spec: dict):
    try:
        dtype = pd.api.types.pandas_dtype(spec["dtype"])
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in ("m", "M"):
        raise DataError(f"saved result is malformed: {spec['dtype']!r} is not a date or "
                        "duration dtype")
    ints = _decode_array(spec["ints"]["$array"]).astype(np.int64)
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = pd.array(ints.view(f"M8[{dtype.unit}]"))
        return naive.tz_localize("UTC").tz_convert(dtype.tz)
    return pd.array(ints.view(dtype))


def _decode_values(spec: dict, dtype: str):
    if "$datetimes" in spec:
        return _decode_datetimes(spec["$datetimes"])
    if "$categorical" in spec:
        c = spec["$categorical"]
        return pd.Categorical.from_codes(_decode_array(c["codes"]["$array"]),
                                         categories=_decode_index(c["categories"]["$index"]),
                                         ordered=c["ordered"])
    values = _decode(spec)
    if values.dtype == object and dtype != "object":  # strings, nullable types
        return pd.array(list(values), dtype=dtype)
    return values


def _decode(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise DataError("saved result is malformed: unexpected JSON object")
    (tag, spec), = value.items()
    if tag == "$float":
        return float(spec)
    if tag == "$tuple":
        return tuple(_decode(v) for v in spec)
    if tag == "$dict":
        return {_decode(k): _decode(v) for k, v in spec}
    if tag == "$array":
        return _decode_array(spec)
    if tag == "$objects":
        items = [_decode(v) for v in spec["items"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(tuple(spec["shape"]))
    if tag == "$index":
        return _decode_index(spec)
    if tag == "$series":
        values = _decode_values(spec["values"], spec["dtype"])
        return pd.Series(values, dtype=values.dtype, index=_decode_index(spec["index"]["$index"]),
                         name=_decode(spec["name"]))
    if tag == "$frame":
        columns = _decode_index(spec["columns"]["$index"])
        index = _decode_index(spec["index"]["$index"])
        data = {}
        for k, (v, t) in enumerate(zip(spec["data"], spec["dtypes"], strict=True)):
            values = _decode_values(v, t)
            data[k] = pd.Series(values, dtype=values.dtype, index=index)
        frame = pd.DataFrame(data, index=index)
        frame.columns = columns
        return frame
    if tag == "$record":
        cls = _records().get(spec["type"])
        if cls is None:
            raise DataError(f"saved result holds an unknown record type {spec['type']!r}")
        decoders = {"model": _decode_model, "family_object": _decode_family}
        kwargs = {k: decoders.get(k, _decode)(v) for k, v in spec["fields"].items()}
        return cls(**kwargs)
    raise DataError(f"saved result is malformed: unknown tag {tag!r}")


def _decode_family(value: object) -> object:
    if value is None:
        return None
    from .families import get_family

    spec = value["$family"]
    return get_family(spec["name"], spec["link"], theta=spec["theta"])


def _decode_model(value: object) -> object:
    if value is None:
        return None
    spec = value["$model"]
    if "design" not in spec:
        return MissingModel(spec.get("kind", "unknown"))
    if "family" in spec:
        from .glmm.model import GlmmModel

        return GlmmModel.from_design(spec["formula"], _decode(spec["design"]),
                                     _decode_family(spec["family"]))
    if "structures" in spec:
        from .residual.model import StructuredModel, StructureSource

        source = _decode(spec["structures"])
        if not isinstance(source, StructureSource):
            raise DataError("saved result is malformed: its residual structures are not a "
                            "StructureSource record")
        return StructuredModel.from_source(spec["formula"], _decode(spec["design"]),
                                           bool(spec["reml"]), source,
                                           _decode(spec["fitted"]), bool(spec["precompute"]))
    from .lmm import LmmModel

    return LmmModel(spec["formula"], _decode(spec["design"]), bool(spec["reml"]))


# ---------------------------------------------------------------- files

def _digest(content: object) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save(result: object, path: str | Path) -> Path:
    """Write a fitted result to ``path`` (see the module docstring for the format).

    Parameters
    ----------
    result : LmmResult, GlmmResult or PqlResult
    path : str or pathlib.Path

    Returns
    -------
    pathlib.Path
        The path written.
    """
    content = _encode(result)
    document = {"format": FORMAT, "version": VERSION, "sha256": _digest(content),
                "content": content}
    path = Path(path)
    path.write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
    return path


def load(path: str | Path) -> object:
    """Read a result written by ``save``; refuses files that were altered.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    LmmResult or GlmmResult

    Raises
    ------
    mixedfx.errors.DataError
        If the file is not a mixedfx result, is of a newer format version, or its content
        does not match its SHA-256 digest (edited, truncated or corrupted).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no such file: '{path}'") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"'{path}' is not a saved mixedfx result (not valid JSON: {exc})") \
            from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(f"'{path}' is not a saved mixedfx result (no '{FORMAT}' header)")
    if document.get("version") != VERSION:
        raise DataError(f"'{path}' has format version {document.get('version')}; this "
                        f"mixedfx reads version {VERSION}: upgrade mixedfx")
    content = document.get("content")
    if _digest(content) != document.get("sha256"):
        raise DataError(f"'{path}' was altered after it was saved: its content does not "
                        "match its SHA-256 digest; refusing to load it")
    try:
        return _decode(content)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"'{path}' is malformed: {exc}") from None
