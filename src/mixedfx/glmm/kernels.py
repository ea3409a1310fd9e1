"""Numba kernel refilling the engine's cross-product blocks in one pass over the rows."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def refill(w, Z1, c1, rest_col, rest_z, rest_pos, dense_pos, XY, A11, A21_val, A22,
           m_r):  # pragma: no cover - compiled
    """Accumulate [Z X z]'W[Z X z] into zeroed blocks.

    Parameters (n rows, p1 first-term columns, r rest columns, t = X and z columns):
    w (n,), Z1 (n, p1), c1 (n,), rest_col (r, n) remainder column of each row,
    rest_z (r, n) its value, rest_pos (r, n) position in A21_val of (level, column),
    dense_pos (levels, t) positions of the X/z entries of each level, XY (n, t).
    """
    n, p1 = Z1.shape
    nr = rest_col.shape[0]
    nt = XY.shape[1]
    A11[:] = 0.0
    A21_val[:] = 0.0
    A22[:] = 0.0
    for i in range(n):
        wi = w[i]
        if wi == 0.0:
            continue
        j = c1[i]
        for a in range(p1):
            wz = wi * Z1[i, a]
            for b in range(p1):
                A11[j, a, b] += wz * Z1[i, b]
            for r in range(nr):
                A21_val[rest_pos[r, i], a] += wz * rest_z[r, i]
            for t in range(nt):
                A21_val[dense_pos[j, t], a] += wz * XY[i, t]
        for r in range(nr):
            wr = wi * rest_z[r, i]
            cr = rest_col[r, i]
            for s in range(nr):
                A22[cr, rest_col[s, i]] += wr * rest_z[s, i]
            for t in range(nt):
                A22[m_r + t, cr] += wr * XY[i, t]
        for t in range(nt):
            wt = wi * XY[i, t]
            for s in range(t + 1):
                A22[m_r + t, m_r + s] += wt * XY[i, s]
    m = A22.shape[0]
    for a in range(m_r, m):  # mirror the X/z rows to the upper triangle
        for b in range(a):
            A22[b, a] = A22[a, b]


@njit(cache=True)
def refill_by_level(w, Z1, lstart, rest_col, rest_z, rest_pos, dense_pos, XY, A11, A21_val,
                    A22, m_r):  # pragma: no cover - compiled
    """Accumulate [Z X z]'W[Z X z] into the blocks, except the (X z)'W(X z) corner of A22
    (left for BLAS), with rows sorted by the first term's level.

    Sums that stay within a level (A11 and the X/z entries of A21) are accumulated level by
    level in a scalar, one entry at a time, instead of by read-modify-writes that form a
    dependency chain through memory when consecutive rows hit the same entry: on VerbAgg
    this made the refill 2-3 times faster than :func:`refill`.

    Parameters as :func:`refill`, with ``lstart`` (levels + 1,) the first sorted row of each
    level in place of the level codes.
    """
    n, p1 = Z1.shape
    nr = rest_col.shape[0]
    nt = XY.shape[1]
    A21_val[:] = 0.0
    A22[:] = 0.0
    for j in range(lstart.shape[0] - 1):
        r0, r1 = lstart[j], lstart[j + 1]
        for a in range(p1):
            for b in range(a + 1):
                acc = 0.0
                for i in range(r0, r1):
                    acc += w[i] * Z1[i, a] * Z1[i, b]
                A11[j, a, b] = acc
                A11[j, b, a] = acc
            for t in range(nt):
                acc = 0.0
                for i in range(r0, r1):
                    acc += w[i] * Z1[i, a] * XY[i, t]
                A21_val[dense_pos[j, t], a] = acc
        for i in range(r0, r1):
            wi = w[i]
            for r in range(nr):
                wr = wi * rest_z[r, i]
                pos = rest_pos[r, i]
                cr = rest_col[r, i]
                for a in range(p1):
                    A21_val[pos, a] += wr * Z1[i, a]
                for s in range(nr):
                    A22[cr, rest_col[s, i]] += wr * rest_z[s, i]
                for t in range(nt):
                    A22[m_r + t, cr] += wr * XY[i, t]
    m = A22.shape[0]
    for a in range(m_r, m):  # mirror the X/z rows to the upper triangle
        for b in range(m_r):
            A22[b, a] = A22[a, b]


@njit(cache=True)
def add_random_part(out, Z, codes, b):  # pragma: no cover - compiled
    """out[i] += Z[i] . b[codes[i]] (one term's contribution to Z Lambda u)."""
    p = Z.shape[1]
    for i in range(out.shape[0]):
        j = codes[i]
        acc = 0.0
        for a in range(p):
            acc += Z[i, a] * b[j, a]
        out[i] += acc
