"""Assemble the engine's :class:`~mixedfx.linalg.blocks.Blocks` from grouped sums.

Every block is a sum of products of two base columns grouped by at most two level codes;
a backend (DuckDB or Dask) computes the sums, this module places them.
"""

from __future__ import annotations

import os

import numpy as np

from ..linalg.blocks import Blocks, stored_first_term
from ..linalg.levelstore import LevelStore, LevelStoreWriter
from .sqlagg import Y


def fixed_cross(source, xcols) -> tuple[np.ndarray, np.ndarray]:
    """X'WX and X'W(y - offset) (the source's Y before any shift) in one pass, for the
    least-squares shift."""
    p = len(xcols)
    pairs = [(xcols[i], xcols[j]) for i in range(p) for j in range(i + 1)]
    pairs += [(xcols[i], Y) for i in range(p)]
    _, v = source.sums([], pairs)
    v = v[0]
    XtX, k = np.zeros((p, p)), 0
    for i in range(p):
        for j in range(i + 1):
            XtX[i, j] = XtX[j, i] = v[k]
            k += 1
    return XtX, v[k:]


def aggregate_blocks(source, zcols: list[list], codes: list[str], nlevels: list[int],
                     xcols: list, n: int, on_disk: bool = False,
                     sum_log_weights: float = 0.0) -> Blocks:
    """Blocks of terms in engine order (``zcols[k]`` the columns of term k, ``codes[k]``
    its code column) and fixed columns ``xcols``, the response being the source's Y; the
    sums are weighted by the source's prior weights, whose ``sum_log_weights`` is given.

    With ``on_disk`` the first term's A11 and A21 go to a :class:`LevelStore` instead of
    memory: streamed there in level order by DuckDB (own connection), or moved there after
    an in-memory aggregation (other backends).
    """
    xy = list(xcols) + [Y]
    pxy = len(xy)
    dims = [len(z) for z in zcols]
    offsets, off = [], 0
    for k in range(1, len(zcols)):
        offsets.append(off)
        off += nlevels[k] * dims[k]
    m_r, m = off, off + pxy
    if on_disk and getattr(source, "can_stream", False):
        first = stored_first_term(_first_term_store(source, zcols, codes, nlevels[0],
                                                    offsets, xy, m_r, m))
    else:
        first = _first_term_memory(source, zcols, codes, nlevels[0], offsets, xy, m_r)
    A22 = _remainder(source, zcols, codes, offsets, xy, m_r, m)
    blocks = Blocks(n=n, dims=tuple(dims), nlevels=tuple(nlevels), p=len(xcols), A22=A22,
                    offsets=tuple(offsets), sum_log_weights=float(sum_log_weights),
                    **first)
    return blocks.on_disk() if on_disk else blocks


def _first_pairs(z0: list, xy: list) -> tuple[list, list]:
    """The first term's (a, b) triangle and its per-level pairs: A11 then Z1'[X y]."""
    d0 = len(z0)
    tri = [(a, b) for a in range(d0) for b in range(a + 1)]
    pairs = [(z0[a], z0[b]) for a, b in tri] + [(z0[a], xy[t]) for t in range(len(xy))
                                                 for a in range(d0)]
    return tri, pairs


def _pick(d0: int, n: int, start: int, a: int) -> str:
    """SQL choosing sum ``v{start + bb * d0 + a}`` by the cross-joined row number ``bb``."""
    if n == 1:
        return f"v{start + a}"
    whens = " ".join(f"WHEN {b} THEN v{start + b * d0 + a}" for b in range(n))
    return f"CASE bb {whens} END"


def _first_term_store(source, zcols, codes, l1, offsets, xy, m_r, m) -> LevelStore:
    """A11 and A21 of the first term written to a :class:`LevelStore` by streaming DuckDB
    results in level order; nothing of size l1 x (entries) is held in memory.

    Three passes: the per-level sums (A11 and Z1'[X y]) into a DuckDB table, streamed by
    level to the store's A11 and a scratch file of the dense entries; then the sparse
    entries (first term x other terms), streamed sorted by (level, column) and merged with
    the dense ones level by level. (DuckDB ran out of its memory limit sorting a UNION of
    the two at 100M rows, while each sorted stream alone stays within it.)
    """
    z0, d0, g0, pxy = zcols[0], len(zcols[0]), codes[0], len(xy)
    tri, pairs = _first_pairs(z0, xy)
    source.create_table("__first", source.sums_sql([g0], pairs))
    writer = LevelStoreWriter(l1, d0, m)
    dense_path = os.path.join(writer.directory, "dense.scratch")
    try:
        expect = 0
        with open(dense_path, "wb") as dense_file:
            for batch in source.stream(f"SELECT * FROM __first ORDER BY {g0}"):
                lev = batch[g0]
                if not np.array_equal(lev, np.arange(expect, expect + len(lev))):
                    raise RuntimeError("level codes of the first term are not 0..levels-1")
                A11 = np.empty((len(lev), d0, d0))
                for i, (a, b) in enumerate(tri):
                    A11[:, a, b] = A11[:, b, a] = batch[f"v{i}"]
                writer.add_A11(A11)
                dense = np.column_stack([batch[f"v{i}"] for i in range(len(tri), len(pairs))])
                dense.tofile(dense_file)  # (levels, pxy * d0), t-major as the pairs
                expect += len(lev)
        source.drop_table("__first")
        merger = _DenseMerger(writer, dense_path, l1, pxy, d0, m_r)
        parts = []
        for k in range(1, len(zcols)):
            zk, dk = zcols[k], len(zcols[k])
            inner = source.sums_sql([g0, codes[k]], [(z0[a], zk[b]) for b in range(dk)
                                                    for a in range(d0)])
            ws = ", ".join(f"{_pick(d0, dk, 0, a)} AS w{a}" for a in range(d0))
            rows = f"CROSS JOIN range({dk}) t(bb)" if dk > 1 else ""
            col = f"{offsets[k - 1]} + {codes[k]} * {dk}" + (" + bb" if dk > 1 else "")
            parts.append(f"SELECT {g0} AS lev, {col} AS col, {ws} FROM ({inner}) {rows}")
        if len(parts) == 1:
            sql = f"SELECT * FROM ({parts[0]}) ORDER BY lev, col"
        elif parts:  # several other terms: collect their entries in a table, then sort
            source.create_table("__a21", parts[0])
            for part in parts[1:]:
                source.execute(f"INSERT INTO __a21 {part}")
            sql = "SELECT * FROM __a21 ORDER BY lev, col"
        if parts:
            for batch in source.stream(sql):
                merger.add(batch["lev"], batch["col"],
                           np.column_stack([batch[f"w{a}"] for a in range(d0)]))
        merger.finish()
    except BaseException:
        writer.abort()  # no half-written store left in the temporary directory
        raise
    finally:
        source.drop_table("__first")
        source.drop_table("__a21")
        if os.path.exists(dense_path):
            os.remove(dense_path)
    return writer.close()


class _DenseMerger:
    """Append sorted sparse entries to a store writer, each complete level followed by its
    ``pxy`` dense entries (remainder columns m_r.., read from the scratch file)."""

    def __init__(self, writer: LevelStoreWriter, dense_path: str, l1: int, pxy: int, d0: int,
                 m_r: int) -> None:
        self.writer, self.path, self.l1, self.pxy, self.d0, self.m_r = (
            writer, dense_path, l1, pxy, d0, m_r)
        self.next = 0  # first level not yet written
        self.carry = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, d0)))

    def add(self, lev: np.ndarray, col: np.ndarray, val: np.ndarray) -> None:
        """Entries continuing the previous ones; the last level is held back (it may go on
        in the next batch)."""
        lev = np.concatenate([self.carry[0], np.asarray(lev, np.int64)])
        col = np.concatenate([self.carry[1], np.asarray(col, np.int64)])
        val = np.concatenate([self.carry[2], val])
        if len(lev) == 0:
            return
        cut = int(np.searchsorted(lev, lev[-1]))
        self.carry = (lev[cut:], col[cut:], val[cut:])
        self._write(lev[:cut], col[:cut], val[:cut], int(lev[-1]))

    def finish(self) -> None:
        """Write the held-back level and every remaining level (dense entries only)."""
        lev, col, val = self.carry
        self._write(lev, col, val, self.l1)

    def _write(self, lev, col, val, upto: int) -> None:
        """Levels ``next..upto-1``: their sparse entries (all given) and dense entries."""
        a, nl, pxy, d0 = self.next, upto - self.next, self.pxy, self.d0
        if nl <= 0:
            return
        width = pxy * d0
        with open(self.path, "rb") as f:
            f.seek(a * width * 8)
            dense = np.fromfile(f, dtype=np.float64, count=nl * width)
        dense = dense.reshape(nl * pxy, d0)
        counts = np.bincount(lev - a, minlength=nl)
        total = len(lev) + nl * pxy
        out_lev, out_col = np.empty(total, np.int64), np.empty(total, np.int64)
        out_val = np.empty((total, d0))
        sparse_pos = np.arange(len(lev)) + (lev - a) * pxy
        dense_pos = ((np.cumsum(counts) + np.arange(nl) * pxy)[:, None]
                     + np.arange(pxy)[None, :]).ravel()
        out_lev[sparse_pos], out_col[sparse_pos], out_val[sparse_pos] = lev, col, val
        out_lev[dense_pos] = np.repeat(np.arange(a, upto), pxy)
        out_col[dense_pos] = np.tile(self.m_r + np.arange(pxy), nl)
        out_val[dense_pos] = dense
        self.writer.add_entries(out_lev, out_col, out_val)
        self.next = upto


def _first_term_memory(source, zcols, codes, l1, offsets, xy, m_r) -> dict:
    """A11 and A21 of the first term in memory (CSR by level)."""
    z0, d0, pxy = zcols[0], len(zcols[0]), len(xy)
    tri, pairs = _first_pairs(z0, xy)
    (lev,), v = source.sums([codes[0]], pairs)
    A11 = np.zeros((l1, d0, d0))
    for i, (a, b) in enumerate(tri):
        A11[lev, a, b] = A11[lev, b, a] = v[:, i]
    dense = np.zeros((l1, pxy, d0))
    dense[lev] = v[:, len(tri):].reshape(len(lev), pxy, d0)
    # first term x other terms: sparse entries
    keys, vals = [], []
    for k in range(1, len(zcols)):
        zk, dk = zcols[k], len(zcols[k])
        pairs = [(z0[a], zk[b]) for b in range(dk) for a in range(d0)]
        (l0, ck), v = source.sums([codes[0], codes[k]], pairs)
        v = v.reshape(len(l0), dk, d0)
        for b in range(dk):
            keys.append(l0 * m_r + offsets[k - 1] + ck * dk + b)
            vals.append(v[:, b, :])
    if keys:
        key = np.concatenate(keys)
        val = np.concatenate(vals)
        order = np.argsort(key, kind="stable")
        key, val = key[order], val[order]
        rlev, rcol = key // m_r, key % m_r
    else:
        rlev = rcol = np.zeros(0, dtype=np.int64)
        val = np.zeros((0, d0))
    rcount = np.bincount(rlev, minlength=l1)
    ptr = np.zeros(l1 + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(rcount + pxy)
    rstart = np.zeros(l1 + 1, dtype=np.int64)
    rstart[1:] = np.cumsum(rcount)
    idx = np.empty(ptr[-1], dtype=np.int64)
    A21 = np.empty((ptr[-1], d0))
    pos = ptr[rlev] + np.arange(len(rlev)) - rstart[rlev]
    idx[pos], A21[pos] = rcol, val
    dense_pos = (ptr[:-1] + rcount)[:, None] + np.arange(pxy)[None, :]
    idx[dense_pos] = m_r + np.arange(pxy)[None, :]
    A21[dense_pos.ravel()] = dense.reshape(-1, d0)
    return dict(A11=A11, A21_ptr=ptr, A21_idx=idx, A21_val=A21)


def _remainder(source, zcols, codes, offsets, xy, m_r, m) -> np.ndarray:
    """The dense remainder A22: other terms, X and y."""
    pxy = len(xy)
    dims = [len(z) for z in zcols]
    A22 = np.zeros((m, m))
    for k in range(1, len(zcols)):
        zk, dk, ok = zcols[k], dims[k], offsets[k - 1]
        trk = [(a, b) for a in range(dk) for b in range(a + 1)]
        pairs = [(zk[a], zk[b]) for a, b in trk] + [(zk[a], xy[t]) for t in range(pxy)
                                                    for a in range(dk)]
        (ck,), v = source.sums([codes[k]], pairs)
        for i, (a, b) in enumerate(trk):
            A22[ok + ck * dk + a, ok + ck * dk + b] = v[:, i]
            A22[ok + ck * dk + b, ok + ck * dk + a] = v[:, i]
        rest = v[:, len(trk):].reshape(len(ck), pxy, dk)
        for t in range(pxy):
            for a in range(dk):
                A22[m_r + t, ok + ck * dk + a] = rest[:, t, a]
                A22[ok + ck * dk + a, m_r + t] = rest[:, t, a]
        for j in range(k + 1, len(zcols)):
            zj, dj, oj = zcols[j], dims[j], offsets[j - 1]
            pairs = [(zk[a], zj[b]) for a in range(dk) for b in range(dj)]
            (ck2, cj), v = source.sums([codes[k], codes[j]], pairs)
            for i, (a, b) in enumerate((a, b) for a in range(dk) for b in range(dj)):
                A22[ok + ck2 * dk + a, oj + cj * dj + b] = v[:, i]
                A22[oj + cj * dj + b, ok + ck2 * dk + a] = v[:, i]
    trxy = [(s, t) for s in range(pxy) for t in range(s + 1)]
    _, v = source.sums([], [(xy[s], xy[t]) for s, t in trxy])
    for i, (s, t) in enumerate(trxy):
        A22[m_r + s, m_r + t] = A22[m_r + t, m_r + s] = v[0, i]
    return A22
