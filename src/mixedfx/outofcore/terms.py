"""Model columns out of core: each column is a product of atoms, an atom being a numeric
column or the indicator of one level of a categorical column (treatment contrasts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

from ..errors import DataError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")

Atom = tuple[str, object]  # (column, None) numeric, (column, level) indicator


@dataclass(frozen=True)
class Column:
    """One model column: its R name and the product of atoms that forms it."""

    name: str
    atoms: tuple[Atom, ...]


def split_terms(expr: str, what: str) -> tuple[bool, list[tuple[str, ...]]]:
    """(has intercept, terms as tuples of variables) of a formula right-hand side with
    ``+``, ``-1``, ``0``, ``:`` and ``*``; DataError naming anything else."""
    intercept, out = True, []
    text = expr.replace(" ", "")
    parts = re.split(r"(?=[+-])", text)
    for raw in parts:
        if not raw or raw == "+":
            continue
        sign, term = (raw[0], raw[1:]) if raw[0] in "+-" else ("+", raw)
        if term in ("0", "1"):
            intercept = intercept if term == "1" and sign == "+" else False
            continue
        if sign == "-":
            raise DataError(f"term '-{term}' of the {what} is not supported out of core; "
                            "write the formula without removing terms")
        if "*" in term:
            vars_ = term.split("*")
            expanded = [c for k in range(1, len(vars_) + 1) for c in combinations(vars_, k)]
        else:
            expanded = [tuple(term.split(":"))]
        for t in expanded:
            if not all(_NAME.match(v) for v in t):
                raise DataError(f"term '{term}' of the {what} is not supported out of core: "
                                "only column names, ':' and '*' (no functions or "
                                "transformations); compute the column in the data first")
            key = tuple(t)
            if key not in out:
                out.append(key)
    out.sort(key=len)  # R orders terms by degree, formula order within a degree
    return intercept, out


def fixed_columns(expr: str, types: dict[str, str], levels: dict[str, list]) -> list[Column]:
    """Columns of X (R's names and order) with treatment contrasts for categoricals."""
    intercept, terms = split_terms(expr, "fixed effects")
    cols = [Column("(Intercept)", ())] if intercept else []
    full_first = not intercept
    for t in terms:
        choices: list[list[tuple[str, Atom | None]]] = []
        for v in t:
            if is_categorical(types[v]):
                if len(t) > 1 and not all((u,) in terms for u in t):
                    raise DataError(f"interaction '{':'.join(t)}' without all its main effects "
                                    "is not supported out of core; add the main effects")
                lev = levels[v]
                use = lev if full_first and len(t) == 1 else lev[1:]
                full_first = False
                choices.append([(f"{v}{lev_}", (v, lev_)) for lev_ in use])
            else:
                choices.append([(v, (v, None))])
        combos: list[list[tuple[str, Atom]]] = [[]]
        for ch in choices:  # the first variable varies fastest, as R's model.matrix
            combos = [c + [x] for x in ch for c in combos]
        for c in combos:
            cols.append(Column(":".join(n for n, _ in c), tuple(a for _, a in c)))
    return cols


def random_columns(expr: str, types: dict[str, str], group: str) -> list[Column]:
    """Columns of a random term's model matrix: intercept and numeric columns only."""
    intercept, terms = split_terms(expr, f"random term ( {expr} | {group} )")
    cols = [Column("(Intercept)", ())] if intercept else []
    for t in terms:
        for v in t:
            if is_categorical(types[v]):
                raise DataError(f"categorical '{v}' in random term ({expr} | {group}) is not "
                                "supported out of core; use numeric columns")
        cols.append(Column(":".join(t), tuple((v, None) for v in t)))
    if not cols:
        raise DataError(f"random term ({expr} | {group}) has no columns")
    return cols


def variables_of(expr: str) -> set[str]:
    """Column names used by a right-hand side (validated by :func:`split_terms`)."""
    _, terms = split_terms(expr, "formula")
    return {v for t in terms for v in t}


def is_categorical(type_name: str) -> bool:
    """Whether a column type (Arrow/DuckDB/pandas spelling) is treated as a factor."""
    t = type_name.lower()
    return any(k in t for k in ("string", "varchar", "object", "bool", "category", "str",
                                "enum"))
