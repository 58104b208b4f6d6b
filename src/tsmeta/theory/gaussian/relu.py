"""Gaussian averages of g(z) = max(z, 0) and g'(z) = Theta(z) (docs/theory.md, section 12).

Signatures of `tsmeta.theory.gaussian.erf`. I2 (the arc-cosine kernel of degree 1), J2
(Sheppard's orthant formula) and I3 (Stein's lemma) are closed forms. I4 = <g' g' g g> and
F4 = <g g g g> contain the orthant probability of four fields, which has none: they are
integrated along the Price path C(t) (off-diagonal entries times t, t from 0 to 1), on which
every term of the derivative is a bivariate density at the origin times closed-form
conditional averages; one Gauss-Legendre rule per pair of fields, in a variable that takes
the density's and the conditional orthant probability's square-root singularities out.

Angles come from atan2, never arccos (exact at |rho| = 1). The closed-form Stein rests are
never evaluated at C itself, only at t < 1 where C(t) is positive definite: at a singular C
(gamma = 1, aligned units, repeated indices: the normal case in the ODE) they are
0 * infinity. A field of zero variance is outside the formulas (NaN).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

F4_NODES = 16  # Gauss-Legendre nodes per pair: error <= 1e-10 generic, ~2e-7 near-singular
PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))  # pairs of the four tuple positions
CHUNK_ROWS = 2048  # four-field covariances integrated at once (bounded memory)
TWO_PI = 2.0 * np.pi


def _angle(cov_ab, var_a, var_b):
    """sqrt(det) and the angle theta = atan2(sqrt(det), C_ab) in [0, pi] of a 2x2 covariance."""
    root = np.sqrt(np.maximum(var_a * var_b - cov_ab**2, 0.0))
    return root, np.arctan2(root, cov_ab)


def _arc_cosine(cov_ab, var_a, var_b):
    """<relu(z_a) relu(z_b)> of a centred pair: (sqrt(det) + C_ab (pi - theta)) / (2 pi)."""
    root, theta = _angle(cov_ab, var_a, var_b)
    return (root + cov_ab * (np.pi - theta)) / TWO_PI


def _diag(C):
    return np.diagonal(C, axis1=-2, axis2=-1)


def I2(C: np.ndarray) -> np.ndarray:
    """<g(z_a) g(z_b)>, shape (..., D, D)."""
    C = np.asarray(C, dtype=float)
    d = _diag(C)
    return _arc_cosine(C, d[..., :, None], d[..., None, :])


def J2(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b)> = P(z_a > 0, z_b > 0) = (pi - theta_ab) / (2 pi), shape (..., F, F)."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    d = _diag(C)[..., :F]
    _, theta = _angle(C[..., :F, :F], d[..., :, None], d[..., None, :])
    return (np.pi - theta) / TWO_PI


def I3(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) z_b g(z_c)> for a < first, shape (..., F, D, D) indexed [a, b, c].

    Stein: C_ab <delta(z_a) relu(z_c)> + C_bc <Theta_a Theta_c>, and
    <delta(z_a) relu(z_c)> = p_a(0) E[relu(z_c) | z_a = 0] = sqrt(det_ac) / (2 pi C_aa)."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    d = _diag(C)
    Caa = d[..., :F]
    root, theta = _angle(C[..., :F, :], Caa[..., :, None], d[..., None, :])  # [a, c]
    delta_part = C[..., :F, :, None] * (root / (TWO_PI * Caa[..., :, None]))[..., :, None, :]
    return delta_part + C[..., None, :, :] * ((np.pi - theta) / TWO_PI)[..., :, None, :]


# --- I4 and F4: the Price path -------------------------------------------------------------


@lru_cache(maxsize=8)
def _rule(nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre on s in [0, 1], mapped to u = 1 - (1 - s)^2: (u, weight * du/ds, 1 - u)
    (the map makes the sqrt(1 - t) of a conditional orthant probability at singular C smooth)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    s, w = 0.5 * (x + 1.0), 0.5 * w
    return 1.0 - (1.0 - s) ** 2, w * 2.0 * (1.0 - s), (1.0 - s) ** 2


def _pair_path(C4, e, f, nodes):
    """The path variable of pair (e, f) of the rows C4 (n, 4, 4).

    The pair's density phi_ef(t) = 1 / (2 pi sqrt(C_ee C_ff - t^2 C_ef^2)) is integrated in
    psi = arcsin(t rho_ef) from 0 to Psi = arcsin(rho_ef) (phi dt = dpsi / (2 pi rho
    sqrt(C_ee C_ff)): no blow-up as |rho| -> 1), psi = Psi u. Returns t (n, q), the weights
    of phi_ef dt (n, q) and cos(psi)^2 (n, q), so that S^(e)_ff = C_ff cos(psi)^2 exactly."""
    u, wu, _ = _rule(nodes)
    root = np.sqrt(C4[:, e, e] * C4[:, f, f])
    rho = np.clip(C4[:, e, f] / root, -1.0, 1.0)
    Psi = np.arcsin(rho)
    flat = rho == 0.0  # then t = u and Psi / rho -> 1
    safe = np.where(flat, 1.0, rho)
    psi = Psi[:, None] * u
    t = np.where(flat[:, None], u, np.sin(psi) / safe[:, None])
    ratio = np.where(flat, 1.0, Psi / safe)
    weight = wu * (ratio / (TWO_PI * root))[:, None]
    return t, weight, np.cos(psi) ** 2


class _Path:
    """Entries of C(t) and of the conditional covariances along one pair's path, each (n, q):
    only the entries a term needs are formed (no (n, q, 4, 4) arrays)."""

    def __init__(self, C4, t):
        self.C4, self.t = C4, t

    def c(self, x, y):
        """C(t)_xy: off-diagonal entries times t."""
        return self.C4[:, None, x, y] if x == y else self.t * self.C4[:, None, x, y]

    def s(self, e, x, y):
        """S^(e)_xy = C(t)_xy - C(t)_xe C(t)_ey / C_ee: the covariance given z_e = 0."""
        return self.c(x, y) - self.c(x, e) * self.c(e, y) / self.C4[:, None, e, e]

    def given_pair(self, e, f, var_f_given_e):
        """Variances and covariance of the other two fields k, l given z_e = z_f = 0,
        conditioning on e, then on f with S^(e)_ff = `var_f_given_e` (exact)."""
        k, l = (x for x in range(4) if x not in (e, f))

        def entry(x, y):
            return self.s(e, x, y) - self.s(e, x, f) * self.s(e, f, y) / var_f_given_e

        return entry(k, k), entry(l, l), entry(k, l)


def _orthant_density(var_k, var_l, cov_kl):
    """pi_ef = P(z_k > 0, z_l > 0 | z_e = z_f = 0) = 1/4 + arcsin(rho) / (2 pi)."""
    rho = np.clip(cov_kl / np.sqrt(np.maximum(var_k * var_l, 0.0)), -1.0, 1.0)
    return 0.25 + np.arcsin(rho) / TWO_PI


def _i4_rows(C4, nodes):
    """<Theta_0 Theta_1 relu_2 relu_3> of the rows C4 (n, 4, 4) (positions 0, 1 carry g').

    I4 = sqrt(C_22 C_33) / (8 pi) + C_23 / 16 + int dt [C_01 phi_01 I2^(01)(2, 3)
    + sum_{i in 01, j in 23} C_ij sum_{x != i} S^(i)_{jbar x} m_ix + C_23 (1 - t) P4'],
    m_ef = phi_ef pi_ef, P4' = sum_{e<f} C_ef m_ef (docs/theory.md, section 12)."""
    total = np.sqrt(C4[:, 2, 2] * C4[:, 3, 3]) / (4 * TWO_PI) + C4[:, 2, 3] / 16.0
    for e, f in PAIRS:
        t, weight, cos2 = _pair_path(C4, e, f, nodes)
        path = _Path(C4, t)
        var_k, var_l, cov_kl = path.given_pair(e, f, C4[:, None, f, f] * cos2)
        coef = C4[:, None, 2, 3] * (1.0 - t) * C4[:, None, e, f]
        for i, x in ((e, f), (f, e)):
            if i < 2:  # i carries g': the cross pairs (i, j), j relu, with jbar the other
                coef = (
                    coef + C4[:, None, i, 2] * path.s(i, 3, x) + C4[:, None, i, 3] * path.s(i, 2, x)
                )
        integrand = coef * _orthant_density(var_k, var_l, cov_kl)
        if (e, f) == (0, 1):
            integrand = integrand + C4[:, None, 0, 1] * _arc_cosine(cov_kl, var_k, var_l)
        total = total + (weight * integrand).sum(-1)
    return total


def _f4_rows(C4, nodes):
    """<relu_0 relu_1 relu_2 relu_3> of the rows C4 (n, 4, 4).

    F4 = sqrt(prod C_xx) / (4 pi^2) + H / 16 + int dt [H (1 - t^2) P4'
    + sum_{i<j} C_ij sum_{e != f} C_ke(t) S^(e)_lf m_ef], (k, l) the complement of (i, j),
    H = C_01 C_23 + C_02 C_13 + C_03 C_12 (docs/theory.md, section 12)."""
    c = lambda x, y: C4[:, None, x, y]  # noqa: E731
    H = c(0, 1) * c(2, 3) + c(0, 2) * c(1, 3) + c(0, 3) * c(1, 2)
    total = np.sqrt(np.prod(_diag(C4), axis=-1)) / (4 * np.pi**2) + H[:, 0] / 16.0
    for e, f in PAIRS:
        t, weight, cos2 = _pair_path(C4, e, f, nodes)
        path = _Path(C4, t)
        var_k, var_l, cov_kl = path.given_pair(e, f, C4[:, None, f, f] * cos2)
        coef = H * (1.0 - t**2) * c(e, f)
        for i, j in PAIRS:
            k, l = (x for x in range(4) if x not in (i, j))
            coef = coef + c(i, j) * (
                path.c(k, e) * path.s(e, l, f) + path.c(k, f) * path.s(f, l, e)
            )
        total = total + (weight * coef * _orthant_density(var_k, var_l, cov_kl)).sum(-1)
    return total


def _rows(C, tuples, integrand, nodes):
    """`integrand` of the four-field covariances C[..., tuple, tuple] of every row of `tuples`
    (n, 4), in chunks: (..., n)."""
    C = np.asarray(C, dtype=float)
    tuples = np.asarray(tuples, dtype=np.intp).reshape(-1, 4)
    C4 = C[..., tuples[:, :, None], tuples[:, None, :]]  # (..., n, 4, 4)
    flat = C4.reshape((-1, 4, 4))
    out = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = integrand(flat[start : start + CHUNK_ROWS], nodes)
    return out.reshape(C4.shape[:-2])


@lru_cache(maxsize=64)
def _distinct(groups: tuple, symmetric: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The distinct index tuples of the block of `groups` (four index lists) up to sorting
    within each set of positions in `symmetric`, and for every position of the block the row
    of its tuple."""
    rows: dict[tuple, int] = {}
    where = np.empty(tuple(len(g) for g in groups), dtype=np.intp)
    for pos in np.ndindex(*where.shape):
        index = [g[i] for g, i in zip(groups, pos)]
        key = tuple(x for part in symmetric for x in sorted(index[p] for p in part))
        where[pos] = rows.setdefault(key, len(rows))
    return np.array(list(rows), dtype=np.intp).reshape(-1, 4), where


def I4(
    C: np.ndarray, first: int | None = None, nodes: int = F4_NODES, *, second: int | None = None
) -> np.ndarray:
    """<g'(z_a) g'(z_b) g(z_c) g(z_d)> for a < first, b < second (default: first), shape
    (..., F, S, D, D); each combination up to a <-> b and c <-> d integrated once."""
    C = np.asarray(C, dtype=float)
    D = C.shape[-1]
    F = D if first is None else first
    S = F if second is None else second
    groups = (tuple(range(F)), tuple(range(S)), tuple(range(D)), tuple(range(D)))
    tuples, where = _distinct(groups, ((0, 1), (2, 3)))
    return _rows(C, tuples, _i4_rows, nodes)[..., where]


def F4(C: np.ndarray, tuples, nodes: int = F4_NODES) -> np.ndarray:
    """<g(z_a) g(z_b) g(z_c) g(z_d)> for each row (a, b, c, d) of `tuples` (n, 4): (..., n).
    Pass each distinct tuple once: F4 is symmetric in its indices."""
    return _rows(C, tuples, _f4_rows, nodes)


def F4_block(C: np.ndarray, a, b, c, d, nodes: int = F4_NODES) -> np.ndarray:
    """F4 on a block of index combinations: (..., |a|, |b|, |c|, |d|) for field indices a, b,
    c, d (lists); every distinct multiset of indices is integrated once."""
    groups = tuple(tuple(int(i) for i in np.atleast_1d(g)) for g in (a, b, c, d))
    tuples, where = _distinct(groups, ((0, 1, 2, 3),))
    return _rows(C, tuples, _f4_rows, nodes)[..., where]
