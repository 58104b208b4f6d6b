"""Gaussian integrals of relu and linear (tsmeta.theory.gaussian.relu, .linear) against Monte
Carlo over every index tuple, singular covariances included; ReLU's quadrature against a
finer rule and against exact special values (docs/theory.md, section 12)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tsmeta.activations import activation
from tsmeta.theory.closed_form import field_covariance

N_MC = 200_000
CHUNK = 50_000
# |z| bound per entry: at most ~1100 distinct entries per covariance, 6 covariances, two
# activations; P(|z| > 5) = 6e-7 for a Gaussian z, so a false alarm of a correct integral has
# chance ~1e-2 (F4's heavy-tailed products make z's tails a little wider at this size). A
# wrong factor moves an entry by far more: 200k samples resolve an O(1) average to ~0.5 %.
Z_MAX = 5.0
EXACT = 1e-9  # entries the samples reproduce without spread (linear J2 = 1): |difference|

TORCH_FREE_G = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
}


def _ode_covariance(K, M, gamma, seed, fixed_point=False):
    rng = np.random.default_rng(seed)
    if fixed_point:
        R, Q, T = np.eye(K, M), np.eye(K), np.eye(M)
    else:
        R = 0.5 * rng.normal(size=(K, M))
        A = rng.normal(size=(K, K))
        Q = R @ R.T + 0.3 * A @ A.T / K + 0.2 * np.eye(K)
        T = np.eye(M) + 0.05 * (lambda B: B + B.T)(rng.normal(size=(M, M)))
    return field_covariance(R, Q, T, gamma)


def covariances():
    """Six covariances (name, C, number of g' fields): random positive definite; random and
    strongly correlated; singular (z8 = z2 with z2 a g' field, z7 = 1.6 z5); the ODE's C at a
    generic state for gamma = 0.6 and gamma = 1 (nu~ = nu) and at the fixed point
    R = Q = T = I, gamma = 1 (rank 3)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5, 5))
    v = rng.normal(size=(7, 2))
    W = rng.normal(size=(7, 7)) * 0.7
    W = np.vstack([W, 1.6 * W[5], W[2]])
    return [
        ("random", X @ X.T / 5 + 0.1 * np.eye(5), 5),
        ("correlated", v @ v.T + 0.05 * np.eye(7), 4),
        ("singular", W @ W.T / 7, 3),
        ("ode-gamma0.6", _ode_covariance(3, 3, 0.6, 1), 3),
        ("ode-gamma1", _ode_covariance(3, 3, 1.0, 2), 3),
        ("fixed-point", _ode_covariance(3, 3, 1.0, 0, fixed_point=True), 3),
    ]


def index_tuples(D, F) -> dict:
    """Every distinct entry of each integral: I2 (a <= b), J2 (a <= b < F), I3 (a < F, all b,
    c), I4 (a <= b < F, c <= d), F4 (multisets of four fields)."""
    pairs = lambda n: list(itertools.combinations_with_replacement(range(n), 2))  # noqa: E731
    return {
        "I2": pairs(D),
        "J2": pairs(F),
        "I3": list(itertools.product(range(F), range(D), range(D))),
        "I4": [ab + cd for ab in pairs(F) for cd in pairs(D)],
        "F4": list(itertools.combinations_with_replacement(range(D), 4)),
    }


# which factor each position carries: g, g' or the field z itself
FACTORS = {"I2": "gg", "J2": "pp", "I3": "pzg", "I4": "ppgg", "F4": "gggg"}


def _monte_carlo(C, F, name, seed):
    """Sample means and standard errors of every distinct entry (`index_tuples`) of C."""
    g, gp = TORCH_FREE_G[name]
    D = C.shape[0]
    vals, vecs = np.linalg.eigh(C)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # z = root x: exact also for singular C
    rng = np.random.default_rng(seed)
    tuples = index_tuples(D, F)
    sums = {k: np.zeros(len(v)) for k, v in tuples.items()}
    squares = {k: np.zeros(len(v)) for k, v in tuples.items()}
    for _ in range(N_MC // CHUNK):
        z = rng.standard_normal((CHUNK, D)) @ root.T
        columns = {"g": g(z), "p": gp(z), "z": z}
        for key, idx in tuples.items():
            idx = np.array(idx)
            prod = np.ones((CHUNK, len(idx)))
            for position, factor in enumerate(FACTORS[key]):
                prod *= columns[factor][:, idx[:, position]]
            sums[key] += prod.sum(0)
            squares[key] += (prod**2).sum(0)
    n = (N_MC // CHUNK) * CHUNK
    out = {}
    for key in tuples:
        mean = sums[key] / n
        out[key] = (mean, np.sqrt(np.maximum(squares[key] / n - mean**2, 0.0) / n))
    return out


def _theory(C, F, name):
    """The module's value at every distinct entry, in the order of `index_tuples`."""
    gauss = activation(name).gaussian()
    tuples = index_tuples(C.shape[0], F)
    full = {
        "I2": gauss.I2(C), "J2": gauss.J2(C, first=F), "I3": gauss.I3(C, first=F),
        "I4": gauss.I4(C, first=F),
    }  # fmt: skip
    out = {key: np.array([full[key][t] for t in tuples[key]]) for key in full}
    out["F4"] = gauss.F4(C, np.array(tuples["F4"]))
    return out


def z_scores(C, F, name, seed=0) -> dict:
    """Per integral, the z-scores of all its distinct entries (theory - sample mean) /
    standard error; entries without spread count as 0 if within EXACT, else inf."""
    mc, th = _monte_carlo(C, F, name, seed), _theory(C, F, name)
    out = {}
    for key, (mean, se) in mc.items():
        diff = th[key] - mean
        exact = se < 1e-14
        safe = np.where(exact, 1.0, se)
        out[key] = np.where(exact, np.where(np.abs(diff) <= EXACT, 0.0, np.inf), diff / safe)
    return out


@pytest.mark.parametrize("name", ["relu", "linear"])
@pytest.mark.parametrize("case", range(6))
def test_every_integral_entry_against_monte_carlo(name, case):
    label, C, F = covariances()[case]
    z = z_scores(C, F, name, seed=case)
    worst = {key: float(np.abs(v).max()) for key, v in z.items()}
    assert all(np.isfinite(v).all() for v in z.values()), (label, worst)
    assert max(worst.values()) < Z_MAX, (label, worst)


# --- ReLU: the quadrature and exact values ---------------------------------------------------

RELU = activation("relu").gaussian()


def test_relu_closed_forms_at_known_values():
    """Unit variances: I2 = 1/(2 pi) and J2 = 1/4 at rho = 0, both 1/2 at rho = 1; I3 with
    c = a is C_ab / 2; <relu^4> = 3 C^2 / 2, <relu_a^2 relu_b^2> = 1/4 + ... at rho = 0."""
    C = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(RELU.I2(C)[0, 1], 1 / (2 * math.pi), rtol=1e-15)
    np.testing.assert_allclose(RELU.J2(C)[0, 1], 0.25, rtol=1e-15)
    np.testing.assert_allclose(RELU.I2(C)[0, 2], 0.5, rtol=1e-15)
    np.testing.assert_allclose(RELU.J2(C)[0, 2], 0.5, rtol=1e-15)
    np.testing.assert_allclose(RELU.I3(C)[0, 2, 0], 0.5, rtol=1e-15)
    np.testing.assert_allclose(RELU.F4(2.0 * C, [(0, 0, 0, 0)]), 6.0, rtol=1e-10)
    # independent fields: <relu^2>^2 = 1/4; <Theta Theta relu relu> of one field = C / 2
    np.testing.assert_allclose(RELU.F4(C, [(0, 0, 1, 1)]), 0.25, rtol=1e-10)
    np.testing.assert_allclose(RELU.I4(C)[0, 0, 0, 0], 0.5, rtol=1e-10)
    np.testing.assert_allclose(RELU.I4(C)[0, 2, 0, 2], RELU.I2(C)[0, 2], rtol=1e-10)
    # anti-identical fields: relu(z) relu(-z) = 0
    anti = np.array([[1.0, -1.0], [-1.0, 1.0]])
    np.testing.assert_allclose(RELU.F4(anti, [(0, 0, 1, 1)]), 0.0, atol=1e-10)


def test_relu_orthant_probability_of_four_equicorrelated_fields():
    """Price: d<Theta_0 Theta_1 relu_2 relu_3>/dC_23 = <Theta_0 Theta_1 Theta_2 Theta_3>, the
    orthant probability, 1/5 for four fields of correlation 1/2 (a central difference)."""
    C = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    # d/dC_23 of I4 at fixed other entries is P4 (Price): a central difference
    h = 1e-5
    up, down = C.copy(), C.copy()
    up[2, 3] = up[3, 2] = 0.5 + h
    down[2, 3] = down[3, 2] = 0.5 - h
    p4 = (RELU.I4(up)[0, 1, 2, 3] - RELU.I4(down)[0, 1, 2, 3]) / (2 * h)
    np.testing.assert_allclose(p4, 0.2, atol=1e-6)


@pytest.mark.parametrize("case", [0, 2, 4, 5])
def test_relu_quadrature_converged(case):
    """16 nodes against 48 on generic and exactly singular covariances: <= 1e-9."""
    _, C, F = covariances()[case]
    D = C.shape[0]
    tuples = np.array(list(itertools.combinations_with_replacement(range(D), 4)))
    np.testing.assert_allclose(RELU.I4(C, F), RELU.I4(C, F, nodes=48), atol=1e-9, rtol=0)
    np.testing.assert_allclose(RELU.F4(C, tuples), RELU.F4(C, tuples, nodes=48), atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", ["erf", "relu", "linear"])
def test_i4_restrictions_are_blocks_of_the_full_tensor(name):
    """first = F restricts a and b, second = S then b alone: blocks of the unrestricted I4."""
    gauss = activation(name).gaussian()
    _, C, F = covariances()[3]
    D = C.shape[0]
    full = gauss.I4(C)
    np.testing.assert_allclose(gauss.I4(C, first=F), full[:F, :F], rtol=0, atol=1e-14)
    np.testing.assert_allclose(gauss.I4(C, first=F, second=D), full[:F], rtol=0, atol=1e-14)
    np.testing.assert_allclose(gauss.I4(C, first=2, second=F), full[:2, :F], rtol=0, atol=1e-14)


def test_relu_block_and_batch_equal_single_tuples():
    _, C, _ = covariances()[3]
    batch = np.stack([C, 1.3 * C])
    block = RELU.F4_block(batch, [6, 7], [6, 8], [0, 1], [2, 0])
    for pos in np.ndindex(2, 2, 2, 2):
        tup = [g[i] for g, i in zip(([6, 7], [6, 8], [0, 1], [2, 0]), pos)]
        np.testing.assert_allclose(block[(slice(None),) + pos], RELU.F4(batch, [tup])[:, 0])
    np.testing.assert_allclose(RELU.I4(batch, 3)[1], RELU.I4(1.3 * C, 3), rtol=1e-14)
