"""Gaussian averages of g(z) = z and g'(z) = 1 (docs/theory.md, section 12).

Signatures of `tsmeta.theory.gaussian.erf`; every integral is a closed form: the moments of
a Gaussian (Isserlis). `nodes` is accepted for the common signature and not used.
"""

from __future__ import annotations

import numpy as np

F4_NODES = 0  # no quadrature


def _first(C: np.ndarray, first: int | None) -> int:
    return C.shape[-1] if first is None else first


def I2(C: np.ndarray) -> np.ndarray:
    """<z_a z_b> = C_ab, shape (..., D, D)."""
    return np.array(C, dtype=float)


def J2(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b)> = 1 for a, b < first, shape (..., F, F)."""
    C = np.asarray(C, dtype=float)
    F = _first(C, first)
    return np.ones(C.shape[:-2] + (F, F))


def I3(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) z_b z_c> = C_bc for a < first, shape (..., F, D, D)."""
    C = np.asarray(C, dtype=float)
    F = _first(C, first)
    return np.broadcast_to(C[..., None, :, :], C.shape[:-2] + (F,) + C.shape[-2:]).copy()


def I4(C: np.ndarray, first: int | None = None, *, second: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b) z_c z_d> = C_cd for a < first, b < second (default: first), shape
    (..., F, S, D, D)."""
    C = np.asarray(C, dtype=float)
    F = _first(C, first)
    S = F if second is None else second
    shape = C.shape[:-2] + (F, S) + C.shape[-2:]
    return np.broadcast_to(C[..., None, None, :, :], shape).copy()


def F4(C: np.ndarray, tuples, nodes: int = F4_NODES) -> np.ndarray:
    """<z_a z_b z_c z_d> = C_ab C_cd + C_ac C_bd + C_ad C_bc for each row of `tuples` (n, 4):
    (..., n)."""
    C = np.asarray(C, dtype=float)
    a, b, c, d = np.asarray(tuples, dtype=np.intp).reshape(-1, 4).T
    pair = lambda x, y: C[..., x, y]  # noqa: E731
    return pair(a, b) * pair(c, d) + pair(a, c) * pair(b, d) + pair(a, d) * pair(b, c)


def F4_block(C: np.ndarray, a, b, c, d, nodes: int = F4_NODES) -> np.ndarray:
    """F4 on a block of index combinations: (..., |a|, |b|, |c|, |d|)."""
    C = np.asarray(C, dtype=float)
    a, b, c, d = (np.atleast_1d(np.asarray(g, dtype=np.intp)) for g in (a, b, c, d))
    A, B = a[:, None, None, None], b[None, :, None, None]
    Cc, Dd = c[None, None, :, None], d[None, None, None, :]
    pair = lambda x, y: C[..., x, y]  # noqa: E731
    return pair(A, B) * pair(Cc, Dd) + pair(A, Cc) * pair(B, Dd) + pair(A, Dd) * pair(B, Cc)
