"""Gaussian averages of g(z) = erf(z / sqrt 2) and g'(z) (docs/theory.md, section 2).

Every function takes a covariance array `C` of shape (..., D, D) and returns the integral
for all index combinations at once. `first` (default: all D) restricts the indices that
carry g' to the first `first` fields (the students), which is all the ODE needs; I4's
`second` then widens its second g' index (the five-field average needs every field). F4 =
<g g g g> (the finite-P term, docs/theory.md section 7) has no closed form: `F4` integrates
it along a path of covariances (Price's theorem) for given index tuples, `F4_block` for a
block of index combinations, each distinct multiset once.
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


def I4(C: np.ndarray, first: int | None = None, *, second: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b) g(z_c) g(z_d)> for a < first, b < second (default: first), shape
    (..., F, S, D, D).

    Saad and Solla (1995): the g' factors tilt the Gaussian; (z_c, z_d) stay Gaussian with
    the Schur-complement covariance, so I4 = J2(a, b) * I2'(c, d) (docs/theory.md).
    """
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    S = F if second is None else second
    e = _diag1(C)
    Cfs = C[..., :F, :S]
    Cfd = C[..., :F, :]
    Csd = C[..., :S, :]
    # axes (..., a, b, c, d)
    e1 = e[..., :F][..., :, None, None, None]
    e2 = e[..., :S][..., None, :, None, None]
    C12 = Cfs[..., :, :, None, None]
    C13 = Cfd[..., :, None, :, None]
    C14 = Cfd[..., :, None, None, :]
    C23 = Csd[..., None, :, :, None]
    C24 = Csd[..., None, :, None, :]
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

# Gauss-Legendre nodes on t in [0, 1]. Error against 64 nodes: ~1e-9 for field variances ~1,
# ~4e-8 at ~2, ~2e-5 at ~4 (tests/test_theory_finite_p.py); the ODE's fields have variance ~1.
F4_NODES = 8
_SPLITS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2))  # {x, x'} | {y, y'} of a sorted tuple


@lru_cache(maxsize=16)
def gauss_legendre_01(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss-Legendre rule on [0, 1] (read-only arrays)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    t, weight = 0.5 * (x + 1.0), 0.5 * w
    t.flags.writeable = weight.flags.writeable = False
    return t, weight


def _split_terms(x, x2, y, y2) -> list[tuple]:
    """The Price terms (i, j, p, q) of the split {x, x2} | {y, y2}: g' on i (first group) and
    j (second group), g on p (first group) and q (second group)."""
    return [(x, y, x2, y2), (x, y2, x2, y), (x2, y, x, y2), (x2, y2, x, y)]


@lru_cache(maxsize=256)
def _price_plan(tuples: tuple) -> tuple:
    """How F4 of each tuple is computed: its split into two pairs and its distinct Price terms.

    Each tuple is split into two groups {x, x2} | {y, y2}, the split with repeated indices
    kept together (fewest distinct terms). Returns the splits (n, 4), the terms (n_terms, 4)
    ordered by tuple, the multiplicity of each term and where each tuple's terms start.
    """
    splits, terms, mult, starts = [], [], [], []
    for tup in tuples:
        tup = sorted(tup)
        options = [[tup[i] for i in order] for order in _SPLITS]
        best = min(options, key=lambda sp: len(set(_split_terms(*sp))))
        splits.append(best)
        starts.append(len(terms))
        seen: dict[tuple, int] = {}
        for key in _split_terms(*best):
            if key in seen:
                mult[seen[key]] += 1.0
            else:
                seen[key] = len(terms)
                terms.append(key)
                mult.append(1.0)
    return (
        np.array(splits, dtype=np.intp),
        np.array(terms, dtype=np.intp),
        np.array(mult),
        np.array(starts, dtype=np.intp),
    )


# elements per temporary array of `_f4_terms`: small enough to stay in the CPU cache
_F4_CHUNK = 1 << 15


def F4(C: np.ndarray, tuples, nodes: int = F4_NODES) -> np.ndarray:
    """<g(z_a) g(z_b) g(z_c) g(z_d)> for each row (a, b, c, d) of `tuples` (n, 4): (..., n).

    Indices may repeat (the factors are then the same field). Split the four factors into
    two pairs {x, x2} | {y, y2} and scale the covariances between the pairs by t: C(t) is a
    covariance for t in [0, 1] (a convex combination of C and its block-diagonal part), at
    t = 0 the pairs are independent, F4 = I2(x, x2) I2(y, y2), and Price's theorem gives
    dF4/dt = sum over the four cross pairs (i, j) of C_ij I4^{C(t)}(i, j; the other two),
    integrated by Gauss-Legendre (docs/theory.md, section 7). The Lambdas of
    I4 are even or odd polynomials in t, so a term costs a few products per node. Pass each
    distinct tuple once: F4 is symmetric in its indices.
    """
    tup = tuple(tuple(int(i) for i in row) for row in np.asarray(tuples).reshape(-1, 4))
    return _f4_terms(np.asarray(C, dtype=float), _price_plan(tup), nodes)


def _f4_terms(C, plan, nodes):
    """F4 of the tuples of a plan (`_price_plan`), in chunks of the batch."""
    splits, terms, mult, starts = plan
    batch = C.shape[:-2]
    flat = C.reshape((-1,) + C.shape[-2:])
    step = max(1, _F4_CHUNK // (len(terms) * nodes))
    out = np.empty((flat.shape[0], len(starts)))
    for c in range(0, flat.shape[0], step):
        part = flat[c : c + step]
        price = _price_terms(part, terms, nodes) * mult
        out[c : c + step] = FOUR_OVER_PI2 * np.add.reduceat(price, starts, axis=-1)
    i2 = I2(flat)
    x, x2, y, y2 = splits.T
    out += i2[:, x, x2] * i2[:, y, y2]
    return out.reshape(batch + (len(starts),))


def _price_terms(C, terms, nodes):
    """C_ij int_0^1 dt I4^{C(t)}(i, j; p, q) / (4 / pi^2) for each term (i, j, p, q), where
    C(t) scales the covariances between the groups {i, p} and {j, q} by t."""
    t, weight = gauss_legendre_01(nodes)
    t = t.reshape((nodes,) + (1,) * (C.ndim - 1))  # nodes first: long inner loops over terms
    i, j, p, q = terms.T
    e = _diag1(C)
    e1, e2, e3, e4 = (e[..., f] for f in (i, j, p, q))
    s12, s14, s23, s34 = C[..., i, j], C[..., i, q], C[..., j, p], C[..., p, q]  # times t
    s13, s24 = C[..., i, p], C[..., j, q]  # inside a group: not scaled
    a, b = e1 * e2, s12 * s12
    t2 = t * t
    lam4 = a - t2 * b
    lam0 = t * (a * s34 - s23 * s24 * e1 - s13 * s14 * e2 + s12 * s13 * s24) + (t2 * t) * (
        s12 * (s14 * s23 - s12 * s34)
    )
    lam1 = (a * e3 - s13 * s13 * e2) - t2 * (b * e3 + s23 * s23 * e1 - 2 * s12 * s13 * s23)
    lam2 = (a * e4 - s24 * s24 * e1) - t2 * (b * e4 + s14 * s14 * e2 - 2 * s12 * s14 * s24)
    integrand = np.arcsin(lam0 / np.sqrt(lam1 * lam2)) / np.sqrt(lam4)
    return s12 * np.tensordot(weight, integrand, axes=1)


@lru_cache(maxsize=64)
def _block_plan(groups: tuple) -> tuple[tuple, np.ndarray]:
    """The Price plan of the distinct index multisets of the block of `groups` (four index
    lists) and, for every position of the block, the row of its multiset."""
    rows: dict[tuple, int] = {}
    where = np.empty(tuple(len(g) for g in groups), dtype=np.intp)
    for pos in np.ndindex(*where.shape):
        key = tuple(sorted(g[i] for g, i in zip(groups, pos)))
        where[pos] = rows.setdefault(key, len(rows))
    return _price_plan(tuple(rows)), where


def F4_block(C: np.ndarray, a, b, c, d, nodes: int = F4_NODES) -> np.ndarray:
    """F4 on a block of index combinations: (..., |a|, |b|, |c|, |d|) for field indices a, b,
    c, d (lists); every distinct multiset of indices is integrated once."""
    groups = tuple(tuple(int(i) for i in np.atleast_1d(g)) for g in (a, b, c, d))
    plan, where = _block_plan(groups)
    return _f4_terms(np.asarray(C, dtype=float), plan, nodes)[..., where]


# --- I6: per-example second moments of the outer update (the diffusion matrix) --------------


def tilted_covariance(C: np.ndarray, first: int) -> np.ndarray:
    """C' (..., F, F, D, D): the covariance of z under the weight g'(z_p) g'(z_q), p, q < F.

    For erf, g'(z) = sqrt(2/pi) exp(-z^2/2): the two factors multiply the Gaussian density
    by exp(-(z_p^2 + z_q^2)/2), which leaves a Gaussian with C' = C - C_.S (1 + C_SS)^-1 C_S.,
    S = (p, q) (Woodbury; p = q works as the multiset), of total weight J2(p, q)
    (docs/theory.md, section 12).
    """
    C = np.asarray(C, dtype=float)
    F = first
    diag = np.diagonal(C, axis1=-2, axis2=-1)[..., :F]
    cpp = diag[..., :, None]
    cqq = diag[..., None, :]
    cpq = C[..., :F, :F]
    det = (1.0 + cpp) * (1.0 + cqq) - cpq**2
    row_p = C[..., :F, None, :]  # C_p. (..., F, 1, D)
    row_q = C[..., None, :F, :]  # C_q. (..., 1, F, D)
    # (1 + C_SS)^-1 = [[1 + c_qq, -c_pq], [-c_pq, 1 + c_pp]] / det
    ipp, iqq, ipq = (((1.0 + cqq) / det), ((1.0 + cpp) / det), (-cpq / det))
    outer = lambda x, y: x[..., :, None] * y[..., None, :]  # noqa: E731
    corr = (
        ipp[..., None, None] * outer(row_p, row_p)
        + iqq[..., None, None] * outer(row_q, row_q)
        + ipq[..., None, None] * (outer(row_p, row_q) + outer(row_q, row_p))
    )
    return C[..., None, None, :, :] - corr


def I6_contracted(C: np.ndarray, first: int, weights: np.ndarray, stein: int) -> np.ndarray:
    """sum_ab weights[p, q, a, b] <g'(z_p) g'(z_q) g(z_a) g(z_b) z_s z_t>, (..., F, F, S, S).

    p, q < first carry g', s, t < stein the plain fields; `weights` (..., F, F, D, D) is
    symmetric in (a, b). Under the tilt (`tilted_covariance`) the average is J2(p, q) times
    a Gaussian average on C', where Stein's lemma on z_s gives
    <z_s z_t g_a g_b>' = C'_sa I3'(a, t, b) + C'_sb I3'(b, t, a) + C'_st I2'(a, b)
    (docs/theory.md, section 12). Also returns J2 (..., F, F) and C' (..., F, F, D, D).
    """
    Ct = tilted_covariance(C, first)
    i3 = I3(Ct)  # [p, q, a, t, b] = <g'(z_a) z_t g(z_b)>'
    i2 = I2(Ct)
    j2 = J2(C, first)
    s = slice(0, stein)
    stein_part = np.einsum("...pqab,...pqsa,...pqatb->...pqst", weights, Ct[..., s, :],
                           i3[..., :, s, :])  # fmt: skip
    plain = np.einsum("...pqab,...pqab->...pq", weights, i2)
    out = j2[..., None, None] * (2.0 * stein_part + plain[..., None, None] * Ct[..., s, s])
    return out, j2, Ct
