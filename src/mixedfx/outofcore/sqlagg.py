"""DuckDB backend: level coding and grouped sums of products by SQL over Parquet files
or a DuckDB relation, never loading the rows into Python."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .terms import Column

Y = "__y__"  # base column: the response minus the offset minus X @ beta_shift
STREAM_ROWS = 1_000_000  # rows per batch when a result is streamed
MEMORY_LIMIT = "512MB"  # DuckDB's default memory limit here (enough at 100M rows, measured)
IDLE_MEMORY_LIMIT = "64MB"  # while the optimizer runs: DuckDB hands its buffers back


@contextmanager
def out_of_memory_hint() -> Iterator[None]:
    """Re-raise DuckDB's out-of-memory error with what to do about it."""
    import duckdb

    try:
        yield
    except duckdb.OutOfMemoryException as err:
        raise MemoryError(f"DuckDB ran out of its memory limit: {err}. Pass a larger "
                          "memory_limit (e.g. memory_limit='4GB') or fewer threads "
                          "(threads=1) to the out-of-core fit") from err


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal for a level value."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value)) if isinstance(value, (float, np.floating)) else str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


class DuckDBSource:
    """Rows of a Parquet file set or a DuckDB relation, filtered to complete cases.

    Parameters
    ----------
    files : list of str, optional
        Parquet files (read by DuckDB's ``read_parquet``).
    relation : duckdb.DuckDBPyRelation, optional
        A relation; queried through ``relation.query``.
    used : list of str
        Columns the model uses (rows with a NULL in any are dropped).
    weight, offset : str, optional
        Columns of prior weights (every sum of products is weighted by it) and of an offset
        (subtracted from the response); both must be in ``used``.
    threads, memory_limit : optional
        DuckDB settings for the Parquet connection; the memory limit defaults to
        :data:`MEMORY_LIMIT` (DuckDB spills to disk beyond it; its own default is 80% of
        the machine's memory).
    """

    def __init__(self, *, files=None, relation=None, used: list[str],
                 weight: str | None = None, offset: str | None = None,
                 threads: int | None = None, memory_limit: str | None = None) -> None:
        import duckdb

        self.files, self.relation, self.used = files, relation, used
        self.weight, self.offset = weight, offset
        self.groups: list[tuple[str, tuple[str, ...]]] = []  # (code column, factors)
        self.shift: list[tuple[Column, float]] = []
        self.response = ""
        if files is not None:
            # a database file in a private temporary directory, not an in-memory database:
            # DuckDB can then evict its tables (level codes, per-level sums) under its
            # memory limit; the directory also takes DuckDB's spill files
            work = tempfile.mkdtemp(prefix="mixedfx-duckdb-")
            weakref.finalize(self, shutil.rmtree, work, True)
            self.con = duckdb.connect(os.path.join(work, "work.duckdb"))
            if threads:
                self.con.execute(f"SET threads = {int(threads)}")
            self.memory_limit = memory_limit or MEMORY_LIMIT
            self.active()
            self.con.execute("SET preserve_insertion_order = false")
            self.con.execute(f"SET temp_directory = {literal(os.path.join(work, 'spill'))}")
            listing = ", ".join(literal(f) for f in files)
            self._from = f"read_parquet([{listing}])"
        else:
            self.con = None
            self._from = "src"

    def active(self) -> None:
        """Give DuckDB its memory limit back (after :meth:`idle`)."""
        if self.con is not None:
            self.con.execute(f"SET memory_limit = {literal(self.memory_limit)}")

    def idle(self) -> None:
        """Make DuckDB return its buffers (tables go to the database file) while the fit
        runs without it; :meth:`active` before the next query."""
        if self.con is not None:
            self.con.execute(f"SET memory_limit = {literal(IDLE_MEMORY_LIMIT)}")

    def _run(self, sql: str) -> dict[str, np.ndarray]:
        with out_of_memory_hint():
            if self.con is not None:
                return self.con.execute(sql).fetchnumpy()
            return self.relation.query("src", sql).fetchnumpy()

    def _complete(self) -> str:
        return " AND ".join(f"{quote(c)} IS NOT NULL" for c in self.used) or "TRUE"

    def _rows(self) -> str:
        return f"(SELECT * FROM {self._from} WHERE {self._complete()})"

    def counts(self) -> tuple[int, int]:
        """(complete rows, all rows)."""
        out = self._run(f"SELECT count(*) AS n, count(*) FILTER (WHERE {self._complete()}) AS "
                        f"k FROM {self._from}")
        return int(out["k"][0]), int(out["n"][0])

    def weight_summary(self) -> tuple[float, int, int]:
        """Over complete rows: (sum of log w over w > 0, rows whose weight is negative or not
        finite, rows whose weight is not 1); zeros without a weight column."""
        if self.weight is None:
            return 0.0, 0, 0
        w = f"CAST({quote(self.weight)} AS DOUBLE)"
        out = self._run(f"SELECT sum(CASE WHEN {w} > 0 THEN ln({w}) ELSE 0 END) AS s, "
                        f"count(*) FILTER (WHERE {w} < 0 OR NOT isfinite({w})) AS bad, "
                        f"count(*) FILTER (WHERE {w} <> 1) AS other FROM {self._rows()}")
        s = out["s"][0]
        return (0.0 if s is None or np.ma.is_masked(s) else float(s), int(out["bad"][0]),
                int(out["other"][0]))

    def _distinct_sql(self, factors: tuple[str, ...]) -> str:
        cols = ", ".join(quote(f) for f in factors)
        return f"SELECT DISTINCT {cols} FROM {self._rows()} ORDER BY {cols}"

    def levels(self, factors: tuple[str, ...]) -> list[tuple]:
        """Distinct values of ``factors`` among complete rows, sorted (factor order)."""
        out = self._run(self._distinct_sql(factors))
        arrays = [out[f] for f in factors]
        return list(zip(*[a.tolist() for a in arrays], strict=True))

    def level_table(self, factors: tuple[str, ...]):
        """Distinct values of ``factors`` among complete rows, sorted, as an Arrow table."""
        return self._arrow(self._distinct_sql(factors))

    def _arrow(self, sql: str):
        """A query's result as an Arrow table."""
        with out_of_memory_hint():
            rel = (self.con.sql(sql) if self.con is not None
                   else self.relation.query("src", sql))
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    def add_group(self, code: str, factors: tuple[str, ...]):
        """Define a code column (0-based level index in sorted order) for ``factors``;
        returns the levels as :meth:`level_table` does (from the code table when there is
        one, so the rows' DISTINCT runs once)."""
        self.groups.append((code, factors))
        if self.con is None:  # a relation: level tables are common table expressions
            return self.level_table(factors)
        self.create_table(code, self._level_query(factors))  # number the levels once
        cols = ", ".join(quote(f) for f in factors)
        return self._arrow(f"SELECT {cols} FROM {code} ORDER BY code")

    def _level_query(self, factors: tuple[str, ...]) -> str:
        cols = ", ".join(quote(f) for f in factors)
        return (f"SELECT {cols}, (row_number() OVER (ORDER BY {cols}) - 1) AS code "
                f"FROM (SELECT DISTINCT {cols} FROM {self._rows()})")

    def set_shift(self, response: str, shift: list[tuple[Column, float]]) -> None:
        """The response base column is ``response - offset - sum(b_j * X_j)``."""
        self.response, self.shift = response, shift

    def _expr(self, base) -> str:
        if base == Y:
            parts = [f"CAST(r.{quote(self.response)} AS DOUBLE)"]
            if self.offset is not None:
                parts.append(f"CAST(r.{quote(self.offset)} AS DOUBLE)")
            parts += [f"({float(b)!r}) * {self._expr(c)}" for c, b in self.shift if b != 0]
            return "(" + " - ".join(parts) + ")"
        if not base.atoms:
            return "CAST(1 AS DOUBLE)"  # a bare 1.0 is a DECIMAL in DuckDB
        terms = []
        for col, level in base.atoms:
            if level is None:
                terms.append(f"CAST(r.{quote(col)} AS DOUBLE)")
            else:
                terms.append(f"(CASE WHEN r.{quote(col)} = {literal(level)} THEN CAST(1 AS DOUBLE) "
                             "ELSE CAST(0 AS DOUBLE) END)")
        return " * ".join(terms)

    def sums_sql(self, keys: list[str], pairs: list[tuple]) -> str:
        """The SQL of :meth:`sums`: key columns named as the codes, sums ``v0, v1, ...``."""
        ctes, joins = [], []
        needed = [(c, f) for c, f in self.groups if c in keys]
        for code, factors in needed:
            if self.con is None:  # a relation: level tables as common table expressions
                ctes.append(f"{code} AS ({self._level_query(factors)})")
            on = " AND ".join(f"r.{quote(f)} = {code}.{quote(f)}" for f in factors)
            joins.append(f"JOIN {code} ON {on}")
        sel = [f"{c}.code AS {c}" for c in keys]
        w = "" if self.weight is None else f"CAST(r.{quote(self.weight)} AS DOUBLE) * "
        sel += [f"sum({w}{self._expr(a)} * {self._expr(b)}) AS v{i}"
                for i, (a, b) in enumerate(pairs)]
        sql = ("WITH " + ", ".join(ctes) + " " if ctes else "")
        sql += f"SELECT {', '.join(sel)} FROM {self._rows()} r {' '.join(joins)}"
        if keys:
            sql += " GROUP BY " + ", ".join(f"{c}.code" for c in keys)
        return sql

    def sums(self, keys: list[str], pairs: list[tuple]) -> tuple[list[np.ndarray], np.ndarray]:
        """Sums of (weighted) products of base columns, grouped by code columns ``keys``.

        Returns the key arrays and a (groups, len(pairs)) array of sums.
        """
        out = self._run(self.sums_sql(keys, pairs))
        vals = np.column_stack([np.asarray(out[f"v{i}"], dtype=float)
                                for i in range(len(pairs))]) if pairs else np.zeros((1, 0))
        return [np.asarray(out[c], dtype=np.int64) for c in keys], np.atleast_2d(vals)

    @property
    def can_stream(self) -> bool:
        """Whether results can be kept in DuckDB tables and streamed (own connection)."""
        return self.con is not None

    def create_table(self, name: str, sql: str) -> None:
        """Keep a query's result in a temporary table (DuckDB spills it when memory is
        short); own connection only."""
        with out_of_memory_hint():
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")

    def execute(self, sql: str) -> None:
        """Run a statement (own connection only)."""
        with out_of_memory_hint():
            self.con.execute(sql)

    def drop_table(self, name: str) -> None:
        """Drop a table made by :meth:`create_table`."""
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def stream(self, sql: str, batch_rows: int | None = None
               ) -> Iterator[dict[str, np.ndarray]]:
        """A query's rows in batches of about ``batch_rows`` (default :data:`STREAM_ROWS`), as
        numpy columns (the result is never held whole in Python); own connection only."""
        batch_rows = batch_rows or STREAM_ROWS
        with out_of_memory_hint():
            rel = self.con.sql(sql)
            reader = (rel.to_arrow_reader(batch_rows) if hasattr(rel, "to_arrow_reader")
                      else rel.fetch_record_batch(batch_rows))
            yield from self._batches(reader)

    @staticmethod
    def _batches(reader) -> Iterator[dict[str, np.ndarray]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        for batch in reader:
            out = {}
            for i, name in enumerate(batch.schema.names):
                col = batch.column(i)
                if pa.types.is_decimal(col.type):  # never Python Decimal objects
                    col = pc.cast(col, pa.float64())
                out[name] = col.to_numpy(zero_copy_only=False)
            yield out
