"""Gaussian erf integrals: Monte Carlo over sampled fields, and tensors against plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from tsmeta.theory.gaussian.erf import I2, I3, I4, J2

N_MC = 400_000
CHUNK = 100_000
N_SIGMA = 5.0


def g(z):
    return erf(z / math.sqrt(2.0))


def gp(z):
    return math.sqrt(2.0 / math.pi) * np.exp(-(z**2) / 2.0)


# --- plain-loop reference: the scalar formulas of docs/theory.md, one index tuple at a time ---


def i2_scalar(C, a, b):
    return 2 / math.pi * math.asin(C[a, b] / math.sqrt((1 + C[a, a]) * (1 + C[b, b])))


def j2_scalar(C, a, b):
    return 2 / math.pi / math.sqrt((1 + C[a, a]) * (1 + C[b, b]) - C[a, b] ** 2)


def i3_scalar(C, a, b, c):
    num = C[b, c] * (1 + C[a, a]) - C[a, b] * C[a, c]
    den = (1 + C[a, a]) * math.sqrt((1 + C[a, a]) * (1 + C[c, c]) - C[a, c] ** 2)
    return 2 / math.pi * num / den


def i4_scalar(C, a, b, c, d):
    e = lambda i: 1 + C[i, i]
    L4 = e(a) * e(b) - C[a, b] ** 2
    L0 = (
        L4 * C[c, d]
        - C[b, c] * C[b, d] * e(a)
        - C[a, c] * C[a, d] * e(b)
        + C[a, b] * C[a, c] * C[b, d]
        + C[a, b] * C[a, d] * C[b, c]
    )
    L1 = L4 * e(c) - C[b, c] ** 2 * e(a) - C[a, c] ** 2 * e(b) + 2 * C[a, b] * C[a, c] * C[b, c]
    L2 = L4 * e(d) - C[b, d] ** 2 * e(a) - C[a, d] ** 2 * e(b) + 2 * C[a, b] * C[a, d] * C[b, d]
    return 4 / math.pi**2 / math.sqrt(L4) * math.asin(L0 / math.sqrt(L1 * L2))


def loop_tensor(fn, C, shape):
    out = np.empty(shape)
    for idx in np.ndindex(*shape):
        out[idx] = fn(C, *idx)
    return out


# --- covariances ----------------------------------------------------------------------------


def random_covariances(seed=0):
    """A generic, a degenerate (one field repeated), and a strongly correlated covariance."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(5, 5))
    generic = X @ X.T / 5 + 0.1 * np.eye(5)
    W = rng.normal(size=(4, 4)) * 0.8
    W = np.vstack([W, W[1]])  # z_4 = z_1: singular, like nu_task = nu at gamma = 1
    degenerate = W @ W.T
    v = rng.normal(size=(5, 1))
    correlated = v @ v.T + 0.05 * np.eye(5)
    return [generic, degenerate, correlated]


def sample_fields(C, n, rng):
    vals, vecs = np.linalg.eigh(C)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # works for singular C
    return rng.standard_normal((n, C.shape[0])) @ root.T


class Moments:
    """Running sums of X and X^2 for matrices of products, to get means and standard errors."""

    def __init__(self):
        self.s1 = self.s2 = 0.0
        self.n = 0

    def add(self, left, right):
        # E[left_i right_j] over the rows
        self.s1 = self.s1 + left.T @ right
        self.s2 = self.s2 + (left**2).T @ (right**2)
        self.n += left.shape[0]

    def result(self):
        mean = self.s1 / self.n
        se = np.sqrt(np.maximum(self.s2 / self.n - mean**2, 0.0) / self.n)
        return mean, se


@pytest.mark.parametrize("which", [0, 1, 2])
def test_integrals_against_monte_carlo(which):
    C = random_covariances()[which]
    D = C.shape[0]
    rng = np.random.default_rng(100 + which)
    m2, mj2, m3, m4 = Moments(), Moments(), Moments(), Moments()
    for _ in range(N_MC // CHUNK):
        z = sample_fields(C, CHUNK, rng)
        gz, gpz = g(z), gp(z)
        m2.add(gz, gz)
        mj2.add(gpz, gpz)
        # [a, b] flattened on the left, c on the right
        m3.add((gpz[:, :, None] * z[:, None, :]).reshape(CHUNK, D * D), gz)
        m4.add(
            (gpz[:, :, None] * gpz[:, None, :]).reshape(CHUNK, D * D),
            (gz[:, :, None] * gz[:, None, :]).reshape(CHUNK, D * D),
        )
    checks = {
        "I2": (I2(C), m2.result()),
        "J2": (J2(C), mj2.result()),
        "I3": (I3(C), m3.result()),
        "I4": (I4(C), m4.result()),
    }
    for name, (theory, (mean, se)) in checks.items():
        mean, se = mean.reshape(theory.shape), se.reshape(theory.shape)
        z_score = np.abs(theory - mean) / (se + 1e-12)
        assert np.all(z_score < N_SIGMA), (name, float(z_score.max()))


@pytest.mark.parametrize("which", [0, 1, 2])
def test_tensors_equal_plain_loops(which):
    C = random_covariances()[which]
    D = C.shape[0]
    np.testing.assert_allclose(I2(C), loop_tensor(i2_scalar, C, (D, D)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(J2(C), loop_tensor(j2_scalar, C, (D, D)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(I3(C), loop_tensor(i3_scalar, C, (D, D, D)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(I4(C), loop_tensor(i4_scalar, C, (D, D, D, D)), rtol=0, atol=1e-12)


def test_batching_and_first_restriction():
    covs = np.stack(random_covariances())  # (3, D, D)
    batch = np.stack([covs, covs[::-1]])  # (2, 3, D, D)
    F = 2
    for fn in (I2, J2, I3, I4):
        full = fn(batch)
        for i, j in np.ndindex(2, 3):
            np.testing.assert_allclose(full[i, j], fn(batch[i, j]), rtol=0, atol=1e-14)
    tol = dict(rtol=0, atol=1e-15)
    np.testing.assert_allclose(J2(batch, first=F), J2(batch)[..., :F, :F], **tol)
    np.testing.assert_allclose(I3(batch, first=F), I3(batch)[..., :F, :, :], **tol)
    np.testing.assert_allclose(I4(batch, first=F), I4(batch)[..., :F, :F, :, :], **tol)
    D = batch.shape[-1]
    np.testing.assert_allclose(I4(batch, first=F, second=D), I4(batch)[..., :F, :, :, :], **tol)


def test_known_values():
    # unit variances, independent fields: I2(a, a) = (2/pi) asin(1/2) = 1/3
    C = np.eye(3)
    np.testing.assert_allclose(np.diag(I2(C)), 1 / 3, rtol=1e-14)
    np.testing.assert_allclose(I2(C) - np.diag(np.diag(I2(C))), 0.0, atol=1e-15)
    # Stein's lemma: I3(a, a, a) = C_aa J2(a, a) / (1 + C_aa) = J2(a, a) / 2 for C_aa = 1
    np.testing.assert_allclose(I3(C)[0, 0, 0], J2(C)[0, 0] / 2, rtol=1e-14)
