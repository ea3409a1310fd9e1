"""Parser for lme4's mixed-model formulas.

A formula ``y ~ fixed + (expr | g)`` is split into its response, the fixed-effects part
(handed to formulaic) and the random-effects terms. The parser expands lme4's shorthands:

* ``(x || g)`` into uncorrelated terms ``(1 | g) + (0 + x | g)``;
* ``(x | a/b)`` into ``(x | a) + (x | b:a)`` (nested, named as lme4 names them);
* ``(x | a:b)`` keeps the interaction ``a:b`` as one grouping factor.

Every error carries the position in the formula at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        The term's model formula (right-hand side), e.g. ``"1 + Days"``.
    factors : tuple of str
        Data columns whose interaction is the grouping factor, e.g. ``("cask", "batch")``.
    """

    expr: str
    factors: tuple[str, ...]

    @property
    def group(self) -> str:
        """Name of the grouping factor as lme4 prints it (``cask:batch``)."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed mixed-model formula.

    Attributes
    ----------
    text : str
        The formula as given.
    response : str
        Left-hand side expression (a column name, a transformation or ``cbind(s, f)``).
    fixed : str
        Right-hand side of the fixed-effects part, for formulaic.
    random : tuple of RandomTerm
        Random-effects terms after expansion, in formula order.
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]


def _check_parens(text: str) -> None:
    depth = 0
    opened: list[int] = []
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            opened.append(i)
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError("unmatched ')' in formula", text, i)
            opened.pop()
    if depth:
        raise FormulaError("unclosed '(' in formula: add the missing ')'", text, opened[-1])


def _split_top(text: str, sep: str, offset: int) -> list[tuple[str, int]]:
    """Split ``text`` at top-level occurrences of the character ``sep``.

    Returns (piece, absolute position of the piece) pairs.
    """
    pieces: list[tuple[str, int]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            pieces.append((text[start:i], offset + start))
            start = i + 1
    pieces.append((text[start:], offset + start))
    return pieces


def _find_bar(inner: str) -> tuple[int, int]:
    """Position and width (1 or 2) of the top-level bar in a parenthesised term, or (-1, 0)."""
    depth = 0
    for i, ch in enumerate(inner):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "|" and depth == 0:
            return i, 2 if inner[i + 1 : i + 2] == "|" else 1
    return -1, 0


def _parse_group(text: str, formula: str, pos: int) -> list[tuple[str, ...]]:
    """Expand a grouping expression (``g``, ``a:b``, ``a/b``) into grouping factors."""
    stripped = text.strip()
    if not stripped:
        raise FormulaError("missing grouping factor after '|': write (expr | group)", formula, pos)
    nested = [p for p, _ in _split_top(stripped, "/", 0)]
    for part in nested:
        for name in part.split(":"):
            name = name.strip().strip("`")
            if not name or not _NAME.match(name):
                at = pos + max(text.find(name), 0) if name else pos
                raise FormulaError(
                    f"grouping factor '{name or part.strip()}' is not a column name; use a "
                    "column (or a:b, a/b of columns) after '|'", formula, at)
    # lme4 expands a/b/c into a, b:a and c:b:a (innermost factor first in the name).
    return [tuple(_nested_name(nested, k)) for k in range(len(nested))]


def _nested_name(nested: list[str], k: int) -> list[str]:
    """Factors of the k-th nesting level, innermost first: a/b/c, k=2 -> [c, b, a]."""
    names: list[str] = []
    for part in reversed(nested[: k + 1]):
        names.extend(n.strip().strip("`") for n in part.split(":"))
    return names


def _expr_terms(expr: str) -> tuple[bool, list[str]]:
    """Split a random-term expression into (has_intercept, non-intercept terms)."""
    has_intercept = True
    terms: list[str] = []
    for piece, _ in _split_top(expr, "+", 0):
        for k, (sub, _) in enumerate(_split_top(piece, "-", 0)):
            s = sub.strip()
            if k > 0:
                if s == "1":
                    has_intercept = False
                    continue
                raise FormulaError(f"cannot remove '{s}' in a random term; only '- 1' is allowed",
                                   expr, None)
            if s in ("0", "-1"):
                has_intercept = False
            elif s == "1":
                has_intercept = True
            elif s:
                terms.append(s)
    return has_intercept, terms


def _random_terms(inner: str, formula: str, pos: int) -> list[RandomTerm]:
    bar, width = _find_bar(inner)
    expr = inner[:bar].strip()
    if not expr:
        raise FormulaError("missing model terms before '|': write (1 | g) for a random intercept",
                           formula, pos + bar)
    groups = _parse_group(inner[bar + width :], formula, pos + bar + width)
    if width == 1:
        exprs = [expr]
    else:
        has_intercept, terms = _expr_terms(expr)
        exprs = (["1"] if has_intercept else []) + [f"0 + {t}" for t in terms]
    return [RandomTerm(e, g) for g in groups for e in exprs]


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula.

    Parameters
    ----------
    text : str
        For example ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With a caret under the position at fault.
    """
    if not isinstance(text, str):
        raise FormulaError(f"the formula must be a string, got {type(text).__name__}")
    _check_parens(text)
    tilde = _split_top(text, "~", 0)
    if len(tilde) != 2 or not tilde[0][0].strip():
        at = text.find("~")
        raise FormulaError("a formula needs one response and one '~', e.g. 'y ~ x + (1 | g)'",
                           text, at if at >= 0 else 0)
    (lhs, _), (rhs, rpos) = tilde
    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    for piece, ppos in _split_top(rhs, "+", rpos):
        stripped = piece.strip()
        lead = ppos + len(piece) - len(piece.lstrip())
        bracketed = stripped.startswith("(") and stripped.endswith(")")
        if bracketed and _find_bar(stripped[1:-1])[0] >= 0:
            random.extend(_random_terms(stripped[1:-1], text, lead + 1))
        elif "|" in stripped:
            raise FormulaError("a random-effects term must be in parentheses: (expr | group)",
                               text, lead + stripped.find("|"))
        elif not stripped:
            raise FormulaError("empty term: check for a doubled or trailing '+'", text, ppos)
        else:
            fixed_parts.append(stripped)
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    return ParsedFormula(text=text, response=lhs.strip(), fixed=fixed, random=tuple(random))
