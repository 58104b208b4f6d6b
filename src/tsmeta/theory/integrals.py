"""Gaussian averages of g(z) = erf(z / sqrt 2) and g'(z) (docs/theory.md, section 2).

Every function takes a covariance array `C` of shape (..., D, D) and returns the integral
for all index combinations at once. `first` (default: all D) restricts the indices that
carry g' to the first `first` fields (the students), which is all the ODE needs.
Invalid covariances give NaN rather than an error: the integrator treats NaN as divergence.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

TWO_OVER_PI = 2.0 / np.pi
FOUR_OVER_PI2 = 4.0 / np.pi**2


def _diag1(C: np.ndarray) -> np.ndarray:
    """1 + C_aa, shape (..., D)."""
    return 1.0 + np.diagonal(C, axis1=-2, axis2=-1)


def I2(C: np.ndarray) -> np.ndarray:
    """<g(z_a) g(z_b)>, shape (..., D, D)."""
    C = np.asarray(C, dtype=float)
    e = _diag1(C)
    return TWO_OVER_PI * np.arcsin(C / np.sqrt(e[..., :, None] * e[..., None, :]))


def J2(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b)> for a, b < first, shape (..., F, F)."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)[..., :F]
    Cff = C[..., :F, :F]
    return TWO_OVER_PI / np.sqrt(e[..., :, None] * e[..., None, :] - Cff**2)


def I3(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) z_b g(z_c)> for a < first, shape (..., F, D, D) indexed [a, b, c]."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)
    ea = e[..., :F]
    Cf = C[..., :F, :]  # C_a., (..., F, D)
    num = C[..., None, :, :] * ea[..., :, None, None] - Cf[..., :, :, None] * Cf[..., :, None, :]
    lam3 = ea[..., :, None] * e[..., None, :] - Cf**2  # [a, c]
    den = ea[..., :, None, None] * np.sqrt(lam3)[..., :, None, :]
    return TWO_OVER_PI * num / den


def I4(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b) g(z_c) g(z_d)> for a, b < first, shape (..., F, F, D, D).

    Saad and Solla (1995): the g' factors tilt the Gaussian; (z_c, z_d) stay Gaussian with
    the Schur-complement covariance, so I4 = J2(a, b) * I2'(c, d) (docs/theory.md).
    """
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)
    Cff = C[..., :F, :F]
    Cfd = C[..., :F, :]
    # axes (..., a, b, c, d)
    e1 = e[..., :F][..., :, None, None, None]
    e2 = e[..., :F][..., None, :, None, None]
    C12 = Cff[..., :, :, None, None]
    C13 = Cfd[..., :, None, :, None]
    C14 = Cfd[..., :, None, None, :]
    C23 = Cfd[..., None, :, :, None]
    C24 = Cfd[..., None, :, None, :]
    C34 = C[..., None, None, :, :]
    lam4 = e1 * e2 - C12**2
    lam0 = lam4 * C34 - C23 * C24 * e1 - C13 * C14 * e2 + C12 * C13 * C24 + C12 * C14 * C23
    # Lambda_1 on (a, b, c), Lambda_2 is the same array on (a, b, d)
    lam4_3 = lam4[..., 0]
    e1_3, e2_3 = e1[..., 0], e2[..., 0]
    C12_3, C13_3, C23_3 = C12[..., 0], C13[..., 0], C23[..., 0]
    ec = e[..., None, None, :]
    lam1 = lam4_3 * ec - C23_3**2 * e1_3 - C13_3**2 * e2_3 + 2.0 * C12_3 * C13_3 * C23_3
    ratio = lam0 / np.sqrt(lam1[..., :, None] * lam1[..., None, :])
    return FOUR_OVER_PI2 / np.sqrt(lam4) * np.arcsin(ratio)


# --- F4 = <g g g g>: no closed form; Price's theorem reduces it to a 1-d integral of I4 ------

F4_NODES = 8  # Gauss-Legendre nodes on t in [0, 1]; error < 1e-6 on the ODE's states (tests)
# the six pairs (i, j) of the four factors that Price's theorem differentiates, with the rest
_PAIRS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2), (1, 2, 0, 3), (1, 3, 0, 2), (2, 3, 0, 1))


def gauss_legendre_01(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss-Legendre rule on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return 0.5 * (x + 1.0), 0.5 * w


def F4(C: np.ndarray, tuples, nodes: int = F4_NODES) -> np.ndarray:
    """<g(z_a) g(z_b) g(z_c) g(z_d)> for each row (a, b, c, d) of `tuples` (n, 4): (..., n).

    Indices may repeat (then the factors are the same field). Along C(t) = diag C +
    t offdiag C (a covariance for t in [0, 1]; at t = 0 the factors are independent and odd,
    so the average is 0), Price's theorem gives dF4/dt = sum_{i<j} C_ij I4^{C(t)}(i, j; rest),
    integrated by Gauss-Legendre (docs/theory.md, finite P). The t-dependence of the
    Lambdas of I4 is polynomial, so each (tuple, pair) costs a few products per node.
    Pass each distinct tuple once: F4 is symmetric in its four indices.
    """
    C = np.asarray(C, dtype=float)
    tup = np.asarray(tuples, dtype=np.intp).reshape(-1, 4)
    t, weight = gauss_legendre_01(nodes)
    e = _diag1(C)[..., tup]  # (..., n, 4): 1 + C_ii
    off = {}
    for i in range(4):
        for j in range(i + 1, 4):
            off[i, j] = off[j, i] = C[..., tup[:, i], tup[:, j]][..., None]  # (..., n, 1)
    t2, t3 = t * t, t * t * t
    total = 0.0
    for i, j, k, l in _PAIRS:
        e1, e2, e3, e4 = (e[..., m, None] for m in (i, j, k, l))
        c12, c13, c14 = off[i, j], off[i, k], off[i, l]
        c23, c24, c34 = off[j, k], off[j, l], off[k, l]
        a, b = e1 * e2, c12 * c12
        lam4 = a - t2 * b
        lam0 = (
            t * (a * c34)
            - t2 * (c23 * c24 * e1 + c13 * c14 * e2)
            + t3 * (c12 * (c13 * c24 + c14 * c23) - b * c34)
        )
        lam1 = a * e3 - t2 * (b * e3 + c23 * c23 * e1 + c13 * c13 * e2) + t3 * (2 * c12 * c13 * c23)
        lam2 = a * e4 - t2 * (b * e4 + c24 * c24 * e1 + c14 * c14 * e2) + t3 * (2 * c12 * c14 * c24)
        i4 = np.arcsin(lam0 / np.sqrt(lam1 * lam2)) / np.sqrt(lam4)
        total = total + c12[..., 0] * (i4 @ weight)
    return FOUR_OVER_PI2 * total


@lru_cache(maxsize=64)
def _distinct_tuples(left: tuple, right: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The distinct index multisets {a, b, k, l} (a, b in left, k, l in right) and, for each
    (a, b, k, l), the row of its multiset."""
    rows: dict[tuple, int] = {}
    where = np.empty((len(left), len(left), len(right), len(right)), dtype=np.intp)
    for pos in np.ndindex(*where.shape):
        i, j, k, l = pos
        key = tuple(sorted((left[i], left[j], right[k], right[l])))
        where[pos] = rows.setdefault(key, len(rows))
    return np.array(list(rows), dtype=np.intp).reshape(-1, 4), where


def F4_block(C: np.ndarray, left, right, nodes: int = F4_NODES) -> np.ndarray:
    """F4(a, b, k, l) for a, b in `left` and k, l in `right` (field indices), shape
    (..., L, L, R, R); every distinct multiset of indices is integrated once."""
    tuples, where = _distinct_tuples(tuple(int(i) for i in left), tuple(int(i) for i in right))
    return F4(C, tuples, nodes)[..., where]
