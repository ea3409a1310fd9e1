"""The first random term's blocks kept in files and read back in chunks of levels.

For a model with millions of levels in its first term (users of a ratings data set), the
sparse A21 (remainder x first term) has about as many entries as the data has rows, so
holding it, and its factor, in memory would cost more than the data itself. An
out-of-core fit therefore writes A11 and A21 to files in level order once, and every
factorization streams them through a fixed-size buffer (:class:`ChunkedElimination
<mixedfx.linalg.chunked.ChunkedElimination>`). The files are read with ordinary reads, not
memory maps, so they sit in the operating system's page cache and never in the process's
resident memory.

Layout (``directory``): ``a11.bin`` float64 (l1, p1, p1); ``idx.bin`` int32 or int64
remainder indices, sorted within each level; ``val.bin`` float64 (nnz, p1); the level
pointer ``ptr`` (l1 + 1 int64) stays in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK_ENTRIES = 2_000_000  # A21 entries read at once (~80 MB with their factor; 1M: 10% slower)


@dataclass(frozen=True, eq=False)
class LevelChunk:
    """Levels ``lo:hi`` of the first term: their A11 blocks and A21 rows (``ptr`` local)."""

    lo: int
    hi: int
    A11: np.ndarray
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray


def level_ranges(ptr: np.ndarray, max_entries: int) -> list[tuple[int, int]]:
    """Consecutive level ranges of at most ``max_entries`` A21 entries (at least one level)."""
    l1, out, lo = len(ptr) - 1, [], 0
    while lo < l1:
        hi = int(np.searchsorted(ptr, ptr[lo] + max_entries, side="right")) - 1
        hi = min(max(hi, lo + 1), l1)
        out.append((lo, hi))
        lo = hi
    return out


def memory_chunks(A11: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
                  max_entries: int) -> Iterator[LevelChunk]:
    """In-memory blocks cut into the same chunks as a :class:`LevelStore` (views)."""
    for lo, hi in level_ranges(ptr, max_entries):
        e0, e1 = ptr[lo], ptr[hi]
        yield LevelChunk(lo, hi, A11[lo:hi], ptr[lo : hi + 1] - e0, idx[e0:e1], val[e0:e1])


class LevelStore:
    """A11 and A21 of the first term in files (see the module docstring).

    Parameters
    ----------
    directory : str
        Holds ``a11.bin``, ``idx.bin`` and ``val.bin``.
    ptr : numpy.ndarray
        (l1 + 1,) start of each level's entries.
    p1 : int
        Random effects per level of the first term.
    idx_dtype : numpy.dtype
        Stored dtype of the remainder indices.
    owned : bool
        Delete ``directory`` when the store is garbage collected.
    chunk_entries : int
        A21 entries per chunk read (bounds the memory of everything that streams the store).
    """

    def __init__(self, directory: str, ptr: np.ndarray, p1: int, idx_dtype, owned: bool,
                 chunk_entries: int = CHUNK_ENTRIES) -> None:
        self.directory, self.ptr, self.p1 = directory, ptr, p1
        self.chunk_entries = int(chunk_entries)
        self.idx_dtype = np.dtype(idx_dtype)
        self.l1, self.nnz = len(ptr) - 1, int(ptr[-1])
        if owned:
            weakref.finalize(self, shutil.rmtree, directory, True)

    def _read(self, name: str, dtype, start: int, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        with open(os.path.join(self.directory, name), "rb") as f:
            f.seek(start * dtype.itemsize)
            out = np.fromfile(f, dtype=dtype, count=count)
        if len(out) != count:
            raise OSError(f"{name} in {self.directory} is shorter than expected (was it "
                          "deleted or truncated while the fit ran?)")
        return out

    def read(self, lo: int, hi: int) -> LevelChunk:
        """Levels ``lo:hi``."""
        p1 = self.p1
        e0, e1 = int(self.ptr[lo]), int(self.ptr[hi])
        A11 = self._read("a11.bin", np.float64, lo * p1 * p1, (hi - lo) * p1 * p1)
        idx = self._read("idx.bin", self.idx_dtype, e0, e1 - e0)
        val = self._read("val.bin", np.float64, e0 * p1, (e1 - e0) * p1)
        return LevelChunk(lo, hi, A11.reshape(hi - lo, p1, p1), self.ptr[lo : hi + 1] - e0,
                          idx, val.reshape(e1 - e0, p1))

    def chunks(self, max_entries: int | None = None) -> Iterator[LevelChunk]:
        """All levels, in chunks of at most ``max_entries`` entries (default
        ``chunk_entries``; at least one level per chunk)."""
        for lo, hi in level_ranges(self.ptr, max_entries or self.chunk_entries):
            yield self.read(lo, hi)

    def read_A11(self) -> np.ndarray:
        """All A11 blocks, (l1, p1, p1)."""
        p1 = self.p1
        return self._read("a11.bin", np.float64, 0, self.l1 * p1 * p1).reshape(self.l1, p1, p1)


class LevelStoreWriter:
    """Write a :class:`LevelStore` from level-ordered pieces.

    Parameters
    ----------
    l1, p1 : int
        Levels and random effects per level of the first term.
    m : int
        Size of the remainder (indices are below it; int32 is stored when it fits).
    directory : str, optional
        Where to write; a new temporary directory (deleted with the store) when omitted.
    """

    def __init__(self, l1: int, p1: int, m: int, directory: str | None = None) -> None:
        self.owned = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="mixedfx-blocks-")
        os.makedirs(self.directory, exist_ok=True)
        self.l1, self.p1 = l1, p1
        self.idx_dtype = np.dtype(np.int32 if m < 2**31 - 1 else np.int64)
        self.counts = np.zeros(l1, dtype=np.int64)
        self._a11_levels = 0
        self._last = (-1, -1)
        self._files = {name: open(os.path.join(self.directory, name), "wb")  # noqa: SIM115
                       for name in ("a11.bin", "idx.bin", "val.bin")}

    def add_A11(self, A11: np.ndarray) -> None:
        """Append the next levels' (k, p1, p1) blocks."""
        A11 = np.ascontiguousarray(A11, dtype=np.float64)
        A11.tofile(self._files["a11.bin"])
        self._a11_levels += A11.shape[0]

    def add_entries(self, lev: np.ndarray, col: np.ndarray, val: np.ndarray) -> None:
        """Append A21 entries sorted by (level, column), continuing the previous ones."""
        if len(lev) == 0:
            return
        lev = np.asarray(lev, dtype=np.int64)
        col = np.asarray(col, dtype=np.int64)
        key_first = (int(lev[0]), int(col[0]))
        order_ok = np.all((np.diff(lev) > 0) | ((np.diff(lev) == 0) & (np.diff(col) > 0)))
        if key_first <= self._last or not order_ok:
            raise ValueError("A21 entries must arrive sorted by (level, column), once each")
        self._last = (int(lev[-1]), int(col[-1]))
        starts = np.concatenate([[0], np.flatnonzero(np.diff(lev)) + 1])
        self.counts[lev[starts]] += np.diff(np.append(starts, len(lev)))
        col.astype(self.idx_dtype).tofile(self._files["idx.bin"])
        np.ascontiguousarray(val, dtype=np.float64).reshape(len(lev), self.p1).tofile(
            self._files["val.bin"])

    def abort(self) -> None:
        """Stop writing and delete what was written (an owned directory)."""
        for f in self._files.values():
            f.close()
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def close(self, chunk_entries: int | None = None) -> LevelStore:
        """Finish writing; the store (reading ``chunk_entries`` entries at a time, default
        :data:`CHUNK_ENTRIES`)."""
        for f in self._files.values():
            f.close()
        if self._a11_levels != self.l1:
            raise ValueError(f"A11 has {self._a11_levels} levels, expected {self.l1}")
        ptr = np.zeros(self.l1 + 1, dtype=np.int64)
        np.cumsum(self.counts, out=ptr[1:])
        return LevelStore(self.directory, ptr, self.p1, self.idx_dtype, self.owned,
                          chunk_entries or CHUNK_ENTRIES)

    @classmethod
    def from_blocks(cls, A11: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
                    m: int, directory: str | None = None,
                    chunk_entries: int | None = None) -> LevelStore:
        """A store holding in-memory blocks (tests, and fits that move blocks to disk)."""
        w = cls(A11.shape[0], A11.shape[1], m, directory)
        w.add_A11(A11)
        lev = np.repeat(np.arange(A11.shape[0]), np.diff(ptr))
        w.add_entries(lev, idx, val)
        return w.close(chunk_entries)
