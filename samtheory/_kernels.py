"""The Numba kernels of the compiled path (:mod:`samtheory._compiled`); importing this module imports Numba.

``cache=True`` keeps the compiled machine code next to this file (or in ``NUMBA_CACHE_DIR``); where that
directory is not writable Numba warns once and compiles in memory, so the cache is requested only where it can
be written.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from .methods import _TINY_NORM

_CACHE = os.access(os.environ.get("NUMBA_CACHE_DIR") or os.path.dirname(os.path.abspath(__file__)), os.W_OK)
jit = numba.njit(cache=_CACHE, nogil=True, error_model="numpy")


@jit
def norms(G, nb, squares, norm):
    """‖G[:, b]‖ for b < nb from the sums of squares, with the NumPy path's rescaling outside
    [1e-270, 1e270] (methods._row_norm)."""
    d = G.shape[0]
    extreme = False
    for b in range(nb):  # branch-free, so that it vectorizes; the rare rows outside the range are redone below
        s = squares[b]
        norm[b] = np.sqrt(s)
        extreme |= not (s > 1e-270 and s < 1e270)
    if not extreme:
        return
    for b in range(nb):
        s = squares[b]
        if s > 1e-270 and s < 1e270:
            continue
        scale = 0.0
        for i in range(d):
            a = abs(G[i, b])
            if a != a:
                scale = a
                break
            if a > scale:
                scale = a
        if np.isinf(scale):
            norm[b] = np.inf
        elif scale > 0:
            total = 0.0
            for i in range(d):
                v = G[i, b] / scale
                total += v * v
            norm[b] = scale * np.sqrt(total)
        else:
            norm[b] = scale * 0.0  # 0, or NaN for a row holding a NaN

@jit
def gradient(kind, M, vec, center, centered, l2, S, Xin, G, work, nb, squares):
    """G = ∇f(Xin) on the rows S of the data (finite sums), and the sums of squares of G's columns."""
    d = Xin.shape[0]
    for b in range(nb):
        squares[b] = 0.0
    if kind == 0:  # diagonal quadratic: λ (x − c)
        for i in range(d):
            lam, c = vec[i], center[i]
            if centered:
                for b in range(nb):
                    g = (Xin[i, b] - c) * lam
                    G[i, b] = g
                    squares[b] += g * g
            else:
                for b in range(nb):
                    g = Xin[i, b] * lam
                    G[i, b] = g
                    squares[b] += g * g
        return
    if kind == 1:  # dense quadratic: (x − c) H
        for j in range(d):
            c = center[j]
            for b in range(nb):
                work[j, b] = Xin[j, b] - c if centered else Xin[j, b]
        for i in range(d):
            for b in range(nb):
                G[i, b] = 0.0
        for j in range(d):
            for i in range(d):
                h = M[j, i]
                for b in range(nb):
                    G[i, b] += work[j, b] * h
    else:  # finite sums on the samples S: residuals (least squares) or weights (logistic) in work
        m = S.shape[0]
        for k in range(m):
            s = S[k]
            for b in range(nb):
                work[k, b] = 0.0
            for j in range(d):
                a = M[s, j]
                for b in range(nb):
                    work[k, b] += Xin[j, b] * a
            target = vec[s]
            if kind == 2:
                for b in range(nb):
                    work[k, b] = work[k, b] - target
            else:
                for b in range(nb):
                    work[k, b] = 1.0 / (1.0 + np.exp(-((-work[k, b]) * target))) * target
        for j in range(d):
            for b in range(nb):
                G[j, b] = 0.0
        for k in range(m):
            s = S[k]
            for j in range(d):
                a = M[s, j]
                for b in range(nb):
                    G[j, b] += work[k, b] * a
        scale = float(m) if kind == 2 else -float(m)
        for j in range(d):
            for b in range(nb):
                G[j, b] = G[j, b] / scale
        if kind == 3 and l2 != 0.0:
            for j in range(d):
                for b in range(nb):
                    G[j, b] = G[j, b] + l2 * Xin[j, b]
    for i in range(d):
        for b in range(nb):
            g = G[i, b]
            squares[b] += g * g

@jit
def weigh(P, V, out, squares, nb, adaptive_eta, twice, A):
    """ASAM's weighting T = |P| + η_ASAM: out = T V and the sums of squares of its columns; with ``twice`` also
    A = T (T V) (the ascent direction)."""
    d = P.shape[0]
    for b in range(nb):
        squares[b] = 0.0
    for i in range(d):
        for b in range(nb):
            scaling = abs(P[i, b]) + adaptive_eta if adaptive_eta else abs(P[i, b])
            weighted = scaling * V[i, b]
            out[i, b] = weighted
            squares[b] += weighted * weighted
            if twice:
                A[i, b] = scaling * weighted


@jit
def compact(keep, nb, arrays, columns, ids):
    """Move the kept columns (rows of the batch) of every array to the front, in order."""
    j = 0
    for b in range(nb):
        if keep[b]:
            if j != b:
                for a in arrays:
                    for i in range(a.shape[0]):
                        a[i, j] = a[i, b]
                for c in columns:
                    c[j] = c[b]
                ids[j] = ids[b]
            j += 1
    return j

@jit
def kernel(kind, M, vec, center, centered, l2, batches, full, ascent, normalize, renormalize, adaptive,
           adaptive_eta, truncate, X, PREV, U, state, diverged_at, converged_at, live, eta, rho, momentum,
           weight_decay, decoupled, origin, has_origin, nesterov, has_base, threshold, converge, factors, t0, t1,
           early_stop, record, record_norm, record_ascent, record_gamma, block):
    d = X.shape[0]
    m = batches.shape[1]
    work_rows = d if kind == 1 else (m if kind >= 2 else 1)
    x = np.empty((d, block))
    new = np.empty((d, block))
    prev = np.empty((d, block))
    G = np.empty((d, block))
    Y = np.empty((d, block))
    GY = np.empty((d, block))
    A = np.empty((d, block)) if adaptive else np.empty((1, 1))
    u = np.zeros((d, block))  # the velocity (unused without a base optimizer)
    work = np.empty((work_rows, block))
    squares, gn, wn, an, agn, gamma = (np.empty(block), np.empty(block), np.empty(block), np.empty(block),
                                       np.empty(block), np.empty(block))
    scale_row = np.empty(block)
    ids = np.empty(block, dtype=np.int64)
    e, r, beta, w, wd, thr, conv = (np.empty(block), np.empty(block), np.empty(block), np.empty(block),
                                    np.empty(block), np.empty(block), np.empty(block))
    keep = np.empty(block, dtype=np.bool_)
    for first in range(0, live.size, block):
        nb = min(block, live.size - first)
        for b in range(nb):
            row = live[first + b]
            ids[b] = row
            e[b], r[b], thr[b], conv[b] = eta[row], rho[row], threshold[row], converge[row]
            beta[b], w[b], wd[b] = momentum[row], weight_decay[row], decoupled[row]
            for i in range(d):
                x[i, b] = X[i, row]
                prev[i, b] = PREV[i, row]
                if has_base:
                    u[i, b] = U[i, row]
        for t in range(t0, t1):
            if nb == 0:
                break
            S = batches[0] if full else batches[t - t0]
            factor = factors[t]
            ratio = 1.0 if t == 0 else factors[t] / factors[t - 1]
            gradient(kind, M, vec, center, centered, l2, S, x, G, work, nb, squares)
            norms(G, nb, squares, gn)
            if not ascent:  # gd: x − η g
                for b in range(nb):
                    agn[b] = gn[b]
                    gamma[b] = 1.0
                for i in range(d):
                    for b in range(nb):
                        new[i, b] = x[i, b] - G[i, b] * (e[b] * factor)
            else:
                if adaptive:  # T g(x) in Y (for its norm), the ascent T² g(x) in A
                    weigh(x, G, Y, squares, nb, adaptive_eta, True, A)
                    norms(Y, nb, squares, wn)
                    asc = A
                    for b in range(nb):
                        an[b] = wn[b]
                else:
                    asc = G
                    for b in range(nb):
                        an[b] = gn[b]
                if normalize:
                    tiny = False
                    for b in range(nb):  # ε = 0 for a zero (or NaN) norm
                        scale_row[b] = r[b] / an[b] if an[b] >= _TINY_NORM else 0.0
                        tiny = tiny or (an[b] > 0 and an[b] < _TINY_NORM)
                    for i in range(d):
                        for b in range(nb):
                            Y[i, b] = asc[i, b] * scale_row[b] + x[i, b]
                    if tiny:  # norms so small that ρ/‖g‖ would overflow: normalize first
                        for b in range(nb):
                            if an[b] > 0 and an[b] < _TINY_NORM:
                                for i in range(d):
                                    Y[i, b] = r[b] * (asc[i, b] / an[b]) + x[i, b]
                else:
                    for i in range(d):
                        for b in range(nb):
                            Y[i, b] = asc[i, b] * r[b] + x[i, b]
                gradient(kind, M, vec, center, centered, l2, S, Y, GY, work, nb, squares)
                norms(GY, nb, squares, agn)
                if renormalize:
                    if adaptive:  # T(y) g(y) in G (g(x) is no longer needed)
                        weigh(Y, GY, G, squares, nb, adaptive_eta, False, A)
                        norms(G, nb, squares, an)
                        for b in range(nb):
                            gamma[b] = wn[b] / an[b] if an[b] > 0 else 1.0
                    else:
                        for b in range(nb):
                            gamma[b] = gn[b] / agn[b] if agn[b] > 0 else 1.0
                    if truncate:
                        for b in range(nb):
                            gamma[b] = min(gamma[b], 1.0)
                    for b in range(nb):
                        scale_row[b] = (e[b] * factor) * gamma[b]
                    for i in range(d):
                        for b in range(nb):
                            new[i, b] = x[i, b] - GY[i, b] * scale_row[b]
                else:
                    for b in range(nb):
                        gamma[b] = 1.0
                    for i in range(d):
                        for b in range(nb):
                            new[i, b] = x[i, b] - GY[i, b] * (e[b] * factor)
            if has_base:  # the engine's _BaseOptimizer.update, in its order of operations
                for i in range(d):
                    o = origin[i]
                    for b in range(nb):
                        position = x[i, b] - o if has_origin else x[i, b]
                        eta_t = e[b] * factor
                        extra = eta_t * w[b] * position
                        carried = (beta[b] * ratio) * u[i, b]
                        velocity = carried + (x[i, b] - new[i, b]) + extra
                        u[i, b] = velocity
                        extra = extra + beta[b] * velocity if nesterov else carried + extra
                        new[i, b] = new[i, b] - extra - (eta_t * wd[b]) * position
            removed = 0
            event = record and t == t0
            for b in range(nb):  # a vectorizable scan: does any row diverge or meet the tolerance at this step?
                event |= (not gn[b] <= thr[b]) or gn[b] <= conv[b]
            for b in range(nb if event else 0):
                row = ids[b]
                if record and t == t0:
                    record_norm[row], record_ascent[row], record_gamma[row] = gn[b], agn[b], gamma[b]
                keep[b] = True
                if not gn[b] <= thr[b]:  # diverged at step t: frozen at x_t, or x_{t−1} if x_t is not finite
                    finite = True
                    for i in range(d):
                        if not np.isfinite(x[i, b]):
                            finite = False
                    for i in range(d):
                        X[i, row] = x[i, b] if finite else prev[i, b]
                    state[row] = 1
                    diverged_at[row] = t
                    keep[b] = False
                elif gn[b] <= conv[b]:
                    if converged_at[row] < 0:
                        converged_at[row] = t
                    if early_stop:  # stopped at x_t
                        for i in range(d):
                            X[i, row] = x[i, b]
                        state[row] = 2
                        keep[b] = False
                if not keep[b]:
                    removed += 1
            x, prev, new = new, x, prev  # x_{t+1}; x_t becomes the previous iterate
            if removed:
                nb = compact(keep, nb, (x, prev, u),
                             (e, r, beta, w, wd, thr, conv), ids)
        for b in range(nb):
            row = ids[b]
            for i in range(d):
                X[i, row] = x[i, b]
                PREV[i, row] = prev[i, b]
                if has_base:
                    U[i, row] = u[i, b]

