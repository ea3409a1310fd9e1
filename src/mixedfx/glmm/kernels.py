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
