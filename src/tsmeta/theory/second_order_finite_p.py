"""The O(1/P) correction of the second-order (ANIL) part of the drift, one inner step.

Derivation: docs/theory.md, section 9a. ANIL's outer gradient has a training part: on training
example mu, dL/dlambda_k^mu = -(eta_w / P) sum_l h_hat_l phi_kl^mu, with h_hat the validation
gradient at the adapted head and phi_kl = g'(lambda_k) [w0_k g(lambda_l) / K +
delta_kl delta_0 / sqrt K] (section 9). At finite P three things change, each exactly at O(1/P):

1. parallel: h_hat moves with the head noise xi, which is correlated with the training mean of
   phi z_b: -(eta_J eta_w^2 / (K P)) sum_lm A_lm E_u Cov_x(h_m, phi_kl z_b) in dR (z_b = nu_n)
   and dQ (z_b = lambda_k', symmetrised);
2. w0: E[(I - eta_w A_hat / K) h_hat] gains (eta_w^2 / K^2) E[(A_hat - A) A xi]:
   dw0_l += -eta_w0 (eta_w^2 / (K^2 P)) sum_mj A_mj Cov_x(g_l g_m, h_j);
3. perpendicular: the training gradient's part orthogonal to every field adds
   (eta_J^2 eta_w^2 / P) E[h_hat_l h_hat_l' <phi_kl phi_k'l'>] to dQ, with
   E[h_hat h_hat^T | u] = h h^T + Sigma_val(u) / V (Sigma_val: one validation example's head
   gradient covariance at the adapted head).

The integrals are I3, I4, F4 and the five-field <g'(z_k) z_b g g g> (`five_field`); the average
over u is exact (`u_average`). Members with inner_steps >= 2 get zero: the correction is not
derived there (the theory file's attribute finite_P_corrections says so).
"""

from __future__ import annotations

import math

import numpy as np

from tsmeta.theory.closed_form import batch_axes as expand
from tsmeta.theory.closed_form import finite_p_exact
from tsmeta.theory.second_order import second_order_theory
from tsmeta.theory.u_average import average, u_nodes

DOC = "finite-P term of the second-order part (ANIL, MAML; inner_steps = 1): dR, dQ, dw0"


def applies(settings, name: str) -> bool:
    """The rule of `rhs.TERMS`: the `finite_p` setting, runs whose ODE is second order."""
    return bool(settings.finite_p) and second_order_theory(name)


def five_field(C, K: int, gaussian) -> np.ndarray:
    """<g'(z_k) z_b g(z_p) g(z_q) g(z_r)> (..., K, D, D, D, K) [k, b, p, q, r], r a student.

    Stein's lemma on z_b, then on the z_k that g'' = -z g' brings down: the sum over f in
    {p, q, r} of (C_bf - C_bk C_kf / (1 + C_kk)) I4(k, f; the other two) (docs/theory.md, 9a).
    `gaussian`: the module of the activation's integrals (`Physics.gaussian`)."""
    i4k = gaussian.I4(C, first=K, second=C.shape[-1])  # [k, f, x, y] = <g'_k g'_f g_x g_y>
    diag = np.diagonal(C, axis1=-2, axis2=-1)
    Ck = C[..., :K, :]  # [k, f]
    # coef[k, b, f] = C_bf - C_bk C_kf / (1 + C_kk)
    coef = (
        C[..., None, :, :]
        - Ck[..., :, :, None] * (Ck / (1.0 + diag[..., :K, None]))[..., :, None, :]
    )
    return (
        coef[..., :, :, :, None, None] * i4k[..., :, None, :, :, :K]
        + np.einsum("...kbq,...kqpr->...kbpqr", coef, i4k[..., :, :, :, :K])
        + np.einsum("...kbr,...krpq->...kbpqr", coef[..., :, :, :K], i4k[..., :, :K, :, :])
    )


def _per_u(f, u):
    """c0, the adapted head's c and the validation gradient h = D h0 at the nodes u
    (..., Q, M): (..., Q, D), (..., Q, D), (..., Q, K)."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    A = f.i2[..., :K, :K]
    Ct = f.i2[..., :K, K + M :]
    w0 = np.asarray(f.w0, float)
    h0 = (np.einsum("...kl,...l->...k", A, w0) / K)[..., None, :]
    h0 = h0 - np.einsum("...km,...qm->...qk", Ct, u) / math.sqrt(K * M)
    ext = h0.shape[:-1]
    w = w0[..., None, :] - expand(np.asarray(f.phys.eta_w, float), 2) * h0
    zeros = np.zeros(ext + (M,))
    teacher = np.broadcast_to(-u / math.sqrt(M), ext + (M,))
    c0 = np.concatenate([np.broadcast_to(w0[..., None, :] / sK, ext + (K,)), zeros, teacher], -1)
    c = np.concatenate([w / sK, zeros, teacher], -1)
    Dm = np.eye(K) - expand(np.asarray(f.phys.eta_w, float) / K, 2) * A
    h = np.einsum("...kl,...ql->...qk", Dm, h0)
    return c0, c, h


def parallel_correction(f, h5, u, weights) -> dict:
    """Items 1 and 2 of the module docstring, before their prefactors: X (..., K, D) with
    X[k, b] = E_u sum_lm A_lm Cov_x(h_m, phi_kl z_b), in {"dR": X[:, nu], "dQ": X[:, lambda]
    symmetrised}, and {"dw0": E_u sum_mj A_mj Cov_x(g_l g_m, h_j)}. Node axis: z."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    A = f.i2[..., :K, :K]
    i3 = f.i3  # [k, b, a]
    noise2 = expand(np.asarray(f.phys.noise_std, float) ** 2, 2)
    c0, _, _ = _per_u(f, u)
    m = np.einsum("...ak,...za->...zk", f.i2[..., :, :K], c0)  # <delta_0 g_k>
    Am = np.einsum("...lm,...zm->...zl", A, m)
    w0 = np.asarray(f.w0, float)[..., None, :, None]  # [z, k, b]
    # <(sum_lm A_lm h_m phi_kl) z_b>: the w0 part and the delta_0^2 part
    gAg = np.einsum("...kbalm,...lm->...kba", h5[..., :K, :], A)
    first = w0 * np.einsum("...kba,...za->...zkb", gAg, c0) / K**1.5
    quad = np.einsum("...kbpqm,...km->...kbpq", h5, A)
    second = np.einsum("...kbpq,...zp,...zq->...zkb", quad, c0, c0)
    second = second + (noise2 * np.einsum("...kbm,...km->...kb", i3[..., :K], A))[..., None, :, :]
    # minus the product of the means <h_m> <phi_kl z_b>
    means = w0 * np.einsum("...zl,...kbl->...zkb", Am, i3[..., :K]) / K**1.5
    means = means + Am[..., None] * np.einsum("...za,...kba->...zkb", c0, i3) / K
    X = average(first + second / K - means, weights, 2)
    Y = X[..., :, :K]
    # w0: (sum_a c0_a sum_mj A_mj F4(l, m, j, a) - (A A m)_l) / sqrt K
    lam, used = np.arange(K), np.concatenate([np.arange(K), np.arange(K + M, K + 2 * M)])
    F = np.einsum("...lmja,...mj->...la", f.gaussian.F4_block(f.C, lam, lam, lam, used), A)
    cov = np.einsum("...la,...za->...zl", F, c0[..., used])
    cov = cov - np.einsum("...lm,...zm->...zl", A, Am)
    return {
        "dR": X[..., :, K : K + M],
        "dQ": Y + np.swapaxes(Y, -1, -2),
        "dw0": average(cov, weights, 1) / sK,
    }


def perpendicular_step(f, u, weights) -> np.ndarray:
    """Item 3 before its prefactor eta_J^2 eta_w^2 / P: E_u[<rho_k rho_k'> +
    sum_ll' Sigma_val_ll' <phi_kl phi_k'l'> / V], rho_k = sum_l h_l phi_kl (..., K, K)."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    i4 = f.i4  # [k, k', a, b]
    A = f.i2[..., :K, :K]
    noise2 = expand(np.asarray(f.phys.noise_std, float) ** 2, 3)
    c0, c, h = _per_u(f, u)
    w0 = np.asarray(f.w0, float)
    # rho_k = g'_k [sum_a r_ka g_a - h_k sigma zeta / sqrt K]
    r = h[..., :, None] * c0[..., None, :] / sK
    r[..., :K] += w0[..., None, :, None] * h[..., None, :] / K
    rho = np.einsum("...zka,...zlb,...klab->...zkl", r, r, i4)
    rho = rho + noise2 * h[..., :, None] * h[..., None, :] * f.j2[..., None, :, :] / K
    # Sigma_val(u) at the adapted head: (c F4 c + sigma^2 A - m1 m1^T) / K, c on U
    used = np.concatenate([np.arange(K), np.arange(K + M, K + 2 * M)])
    f4 = f.gaussian.F4_block(f.C, used, used, np.arange(K), np.arange(K))
    cu = c[..., used]
    m1 = np.einsum("...ak,...za->...zk", f.i2[..., used, :K], cu)
    sig = np.einsum("...za,...zb,...abkl->...zkl", cu, cu, f4) + noise2 * A[..., None, :, :]
    sig = (sig - m1[..., :, None] * m1[..., None, :]) / K
    # sum_ll' Sigma_ll' <phi_kl phi_k'l'>, phi_kl = g'_k (w0_k g_l / K + delta_kl delta_0 / sK)
    wk, wl = w0[..., None, :, None], w0[..., None, None, :]
    val = wk * wl * np.einsum("...zab,...klab->...zkl", sig, i4[..., :K, :K]) / K**2
    val = val + wk * np.einsum("...zal,...zb,...klab->...zkl", sig, c0, i4[..., :K, :]) / K**1.5
    val = val + wl * np.einsum("...zbk,...za,...klab->...zkl", sig, c0, i4[..., :, :K]) / K**1.5
    val = val + sig * np.einsum("...za,...zb,...klab->...zkl", c0, c0, i4) / K
    val = val + noise2 * sig * f.j2[..., None, :, :] / K
    V = expand(np.asarray(f.phys.V, float), 3)
    return average(rho + val / V, weights, 2)


def second_order_finite_p_term(f) -> dict:
    """The three O(1/P) corrections of ANIL's second-order part (module docstring), for the
    members with one inner step; {} where none has."""
    exact = finite_p_exact(f.phys)
    if not np.any(exact):
        return {}
    K = f.K
    phys = f.phys
    u, weights = u_nodes(f.M, phys.u_mean, phys.u_std)
    par = parallel_correction(f, five_field(f.C, K, f.gaussian), u, weights)
    perp = perpendicular_step(f, u, weights)
    eta_J, eta_w, P = (np.asarray(x, float) for x in (phys.eta_J, phys.eta_w, phys.P))
    on = np.where(exact, 1.0, 0.0)
    rate = expand(on * eta_J * eta_w**2 / (K * P), 2)
    perp_rate = expand(on * eta_J**2 * eta_w**2 / P, 2)
    w0_rate = expand(on * np.asarray(phys.eta_w0, float) * eta_w**2 / (K**2 * P), 1)
    return {
        "dR": -rate * par["dR"],
        "dQ": -rate * par["dQ"] + perp_rate * perp,
        "dw0": -w0_rate * par["dw0"],
    }
