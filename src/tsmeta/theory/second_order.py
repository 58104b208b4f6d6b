"""The second-order (ANIL) part of the drift: the outer gradient through the inner head steps.

Derivation: docs/theory.md, section 9. The training loss is quadratic in the head, so the mean
head gradient after s inner steps is h_s = D_m^s h_0 with D_m = I - eta_w A / K and
h_0 = A w0 / K - C~ u / sqrt(KM). ANIL differentiates the validation loss at the adapted head
w_S(J, w0) through the inner steps as well; that adds, for every inner step s < S,

    dR_kn += eta_J eta_w sum_a coef_s[k, a] I3(lambda_k, nu_n, z_a),
    coef_s[k, a] = E[v_{s,k} c^(s)_a] / sqrt(K) + [a < K] E[v_{s,a} w_{s,k}] / K,

with v_s = D_m^(2S-1-s) h_0, w_s the head after s steps and c^(s) = c(w_s); dQ gets the same
with nu_n -> lambda_k' (symmetrised), and dw0 changes from -eta_w0 D_m^S E_u h_0 (FO-ANIL) to
-eta_w0 D_m^(2S) E_u h_0. Everything is affine in u, so only second moments over u, I2 and I3
are needed. MAML has the same ODE at leading order in N (docs/theory.md, section 9).
"""

from __future__ import annotations

import math

import numpy as np

from tsmeta.algorithms import algorithm
from tsmeta.theory.closed_form import batch_axes

DOC = "second order (ANIL, MAML): the outer gradient through the inner head steps in dR, dQ, dw0"


def theory_algorithm(name: str) -> str:
    """Which ODE the theory of a run integrates (the table's `theory`: ANIL's for ANIL and
    MAML, FO-ANIL's for FO-ANIL and FO-MAML); docs/theory.md, section 9."""
    return algorithm(name).theory


def second_order_theory(name: str) -> bool:
    """Whether the ODE of runs of algorithm `name` differentiates through the inner loop
    (ANIL's: ANIL and MAML, whose ODE is ANIL's at leading order in N)."""
    return algorithm(theory_algorithm(name)).second_order


def applies(settings, name: str) -> bool:
    """The rule of `rhs.TERMS`: runs whose ODE is second order, whatever the settings."""
    return second_order_theory(name)


class _Affine:
    """A vector affine in the task head u ~ N(u_mean 1, u_std^2 I): x = const + lin u.

    const (..., n), lin (..., n, M)."""

    def __init__(self, const, lin):
        self.const, self.lin = const, lin

    def apply(self, mat) -> _Affine:
        """mat x, mat (..., m, n)."""
        return _Affine(np.einsum("...mn,...n->...m", mat, self.const), mat @ self.lin)

    def mean(self, u_mean) -> np.ndarray:
        return self.const + batch_axes(u_mean, 1) * self.lin.sum(-1)


def _second_moment(x: _Affine, y: _Affine, u_mean, u_std) -> np.ndarray:
    """E_u[x_i y_j] (..., n, m) for x, y affine in u."""
    mx, my = x.mean(u_mean), y.mean(u_mean)
    cov = batch_axes(np.asarray(u_std, float) ** 2, 2) * (x.lin @ np.swapaxes(y.lin, -1, -2))
    return mx[..., :, None] * my[..., None, :] + cov


def _select_power(powers: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """D^exponent per batch member from powers[j] = D^j (j, ..., K, K); exponent batch-shaped."""
    idx = np.broadcast_to(exponent, powers.shape[1:-2])[None, ..., None, None]
    return np.take_along_axis(powers, idx, axis=0)[0]


def second_order_term(f) -> dict:
    """ANIL minus FO-ANIL drift: {"dR", "dQ", "dw0"} at the state of `f` (an `rhs.Fields`).

    Vectorised over the batch dims of the state and the parameters (eta_w and inner_steps may
    differ between members). Zero where D_m = 0 (eta_w A = K I, e.g. eta_w = 3K at Q = I).
    """
    K, M = f.K, f.M
    D_fields = K + 2 * M
    phys = f.phys
    i2 = f.i2
    A = i2[..., :K, :K]
    Ct = i2[..., :K, K + M :]
    batch = np.broadcast_shapes(A.shape[:-2], np.shape(phys.eta_w), np.shape(phys.inner_steps))
    eta_w = np.broadcast_to(np.asarray(phys.eta_w, float), batch)
    S = np.broadcast_to(np.asarray(phys.inner_steps, np.int64), batch)
    S_max = int(S.max())
    eye = np.eye(K)
    Dm = np.broadcast_to(eye - batch_axes(eta_w / K, 2) * A, batch + (K, K))

    powers = [np.broadcast_to(eye, Dm.shape)]
    for _ in range(2 * S_max):
        powers.append(Dm @ powers[-1])
    powers = np.stack(powers)  # D^0 .. D^(2 S_max)

    w0 = np.broadcast_to(np.asarray(f.w0, float), batch + (K,))
    # h_0 = A w0 / K - C~ u / sqrt(KM), w_0 = w0 (no u dependence)
    h0 = _Affine(
        np.einsum("...kl,...l->...k", A, w0) / K,
        np.broadcast_to(-Ct / math.sqrt(K * M), batch + (K, M)),
    )
    w = _Affine(w0, np.zeros(batch + (K, M)))
    # c = (w / sqrt K, 0_M, -u / sqrt M): the task-teacher part does not change with s
    c_teacher = _Affine(
        np.zeros(batch + (2 * M,)),
        np.broadcast_to(
            np.concatenate([np.zeros((M, M)), -np.eye(M) / math.sqrt(M)]), batch + (2 * M, M)
        ),
    )
    um, us = phys.u_mean, phys.u_std
    coef = np.zeros(batch + (K, D_fields))
    for s in range(S_max):
        on = s < S
        v = h0.apply(_select_power(powers, np.clip(2 * S - 1 - s, 0, None)))
        c = _Affine(
            np.concatenate([w.const / math.sqrt(K), c_teacher.const], axis=-1),
            np.concatenate([w.lin / math.sqrt(K), c_teacher.lin], axis=-2),
        )
        step = _second_moment(v, c, um, us) / math.sqrt(K)  # [k, a] = E[v_k c_a] / sqrt K
        E_vw = _second_moment(v, w, um, us)  # [m, k] = E[v_m w_k]
        step[..., :K] += np.swapaxes(E_vw, -1, -2) / K
        coef = coef + np.where(batch_axes(on, 2), step, 0.0)
        # next inner step: w <- w - eta_w h(w), h(w_s) = D^s h_0
        h_s = h0.apply(powers[s])
        w = _Affine(
            w.const - batch_axes(eta_w, 1) * h_s.const, w.lin - batch_axes(eta_w, 2) * h_s.lin
        )

    rate = batch_axes(np.asarray(phys.eta_J, float) * eta_w, 2)
    dR = rate * np.einsum("...ka,...kna->...kn", coef, f.i3[..., :, K : K + M, :])
    X = np.einsum("...pa,...pqa->...pq", coef, f.i3[..., :, :K, :])
    dQ = rate * (X + np.swapaxes(X, -1, -2))
    # dw0: -eta_w0 (D^2S - D^S) E_u h_0
    mean_h0 = h0.mean(um)
    diff = _select_power(powers, 2 * S) - _select_power(powers, S)
    dw0 = -batch_axes(phys.eta_w0, 1) * np.einsum("...kl,...l->...k", diff, mean_h0)
    return {"dR": dR, "dQ": dQ, "dw0": dw0}
