"""The finite-VP term: the finite-V term of dQ at the head adapted on P examples.

Derivation: docs/theory.md, section 7a. The finite-V term (eta_J^2 / V) <e_k e_l> is quartic in
the adapted head. With one inner step on P examples the head is w_hat = w - eta_w xi with
E[xi | u] = 0 and Cov(xi | u) = Sigma(u) / P, so its O(1/P) part is (eta_J^2 eta_w^2 / (V P K))
times the terms with two xi's. Sigma(u) is a quadratic form in c0 = (w0/sqrt K, 0, -u/sqrt M),
and w, c = (w/sqrt K, 0, -u/sqrt M) are affine in u: the average over u is a fourth Gaussian
moment, evaluated in closed form (`noise_moment`); the integrals are I4, J2 and F4.

Applied to every algorithm (for ANIL and MAML the validation gradient is the FO-ANIL one, so
the term is the same); left out: O(eta_J^2 eta_w^3 / (V P^2)) (the third and fourth moments of
xi, which need six- and eight-fold integrals of g). Members with inner_steps >= 2 get the same
from the head expanded to second order in the training-set noise (`finite_p_steps`).
"""

from __future__ import annotations

import math

import numpy as np

from tsmeta.theory.closed_form import batch_axes as expand
from tsmeta.theory.closed_form import finite_p_exact
from tsmeta.theory.finite_p_steps import finite_v_shift

DOC = "finite-VP term: the O(eta_J^2 eta_w^2/(VP)) part of the finite-V term in dQ"


def applies(settings, name: str) -> bool:
    """The rule of `rhs.TERMS`: both the finite-V and the finite-P settings, every algorithm."""
    return bool(settings.finite_v) and bool(settings.finite_p)


def noise_quadratic_form(f):
    """Sigma(u) = (c0^T Gamma c0 + sigma^2 A) / K over the fields U that c0 uses.

    Returns Gamma (..., K, K, U, U) [p, q, a, b] = F4(a, b, p, q) - I2(a, p) I2(b, q)
    (symmetrised in a, b), and c0 = mu0 + beta0 (u - u_mean 1) restricted to U: mu0 (..., U),
    beta0 (..., U, M). U = students and task teacher, or the task teacher alone if w0 = 0.
    """
    K, M = f.K, f.M
    lam, task = np.arange(K), np.arange(K + M, K + 2 * M)
    w0 = np.asarray(f.w0, float)
    um = expand(np.asarray(f.phys.u_mean, float), 1)
    batch = np.broadcast_shapes(f.C.shape[:-2], w0.shape[:-1], um.shape[:-1])
    teacher_mu = np.broadcast_to(-um / math.sqrt(M), batch + (M,))
    teacher_beta = np.broadcast_to(-np.eye(M) / math.sqrt(M), batch + (M, M))
    if np.any(w0):
        used = np.concatenate([lam, task])
        mu0 = np.concatenate([np.broadcast_to(w0 / math.sqrt(K), batch + (K,)), teacher_mu], -1)
        beta0 = np.concatenate([np.zeros(batch + (K, M)), teacher_beta], -2)
    else:
        used, mu0, beta0 = task, teacher_mu, teacher_beta
    f4 = f.gaussian.F4_block(f.C, used, used, lam, lam)  # [a, b, p, q]
    i2 = f.i2[..., used, :K]  # [a, p]
    mm = 0.5 * (
        i2[..., :, None, :, None] * i2[..., None, :, None, :]
        + i2[..., None, :, :, None] * i2[..., :, None, None, :]
    )
    gamma = np.moveaxis(f4 - mm, (-2, -1), (-4, -3))
    return gamma, mu0, beta0


def head_affine(f):
    """v = (w, c) = mu_v + beta_v (u - u_mean 1) at P = infinity: mu_v (..., K+D), beta_v
    (..., K+D, M); docs/theory.md, section 4."""
    K, M = f.K, f.M
    mom = f.moments
    _, G = f.head
    sK, sM = math.sqrt(K), math.sqrt(M)
    mu = np.concatenate([mom["alpha_w"], mom["alpha_c"]], -1)
    batch = mu.shape[:-1]
    G = np.broadcast_to(G, batch + (K, M))
    beta = np.concatenate(
        [G, G / sK, np.zeros(batch + (M, M)), np.broadcast_to(-np.eye(M) / sM, batch + (M, M))],
        -2,
    )
    return mu, beta


def noise_moment(f):
    """Z[p, q, r, s] = E_u[Sigma_pq(u) v_r v_s] (..., K, K, K+D, K+D) and Sigma_bar (..., K, K).

    For Gaussian x (c0) and y (v): E[x^T G x y_r y_s] = (mu0 G mu0 + tr G S00) E[y_r y_s]
    + 2 (G mu0) . (S0v[:, r] mu_s + S0v[:, s] mu_r) + 2 (S0v^T G S0v)_rs (Isserlis)."""
    K = f.K
    gamma, mu0, beta0 = noise_quadratic_form(f)
    mu, beta = head_affine(f)
    us2 = expand(np.asarray(f.phys.u_std, float) ** 2, 2)
    S00 = us2 * beta0 @ np.swapaxes(beta0, -1, -2)
    S0v = us2 * beta0 @ np.swapaxes(beta, -1, -2)
    Evv = mu[..., :, None] * mu[..., None, :] + us2 * beta @ np.swapaxes(beta, -1, -2)
    q0 = np.einsum("...a,...pqab,...b->...pq", mu0, gamma, mu0) + np.einsum(
        "...pqab,...ba->...pq", gamma, S00
    )
    t = np.einsum("...pqab,...a,...br->...pqr", gamma, mu0, S0v, optimize=True)
    cross = 2.0 * (t[..., :, None] * mu[..., None, None, None, :])
    cross = cross + np.swapaxes(cross, -1, -2)
    quad = 2.0 * np.einsum("...ar,...pqab,...bs->...pqrs", S0v, gamma, S0v, optimize=True)
    noise = expand(np.asarray(f.phys.noise_std, float) ** 2, 2) * f.i2[..., :K, :K]
    Z = (q0[..., None, None] * Evv[..., None, None, :, :] + cross + quad) / K
    Z = Z + (noise / K)[..., None, None] * Evv[..., None, None, :, :]
    return Z, (q0 + noise) / K


def finite_vp_term(f) -> dict:
    """The O(1/P) part of (eta_J^2 / V) <e_k e_l> in dQ: the pairs of xi's in
    E[w_hat_k w_hat_l c_hat_a c_hat_b] I4 and E[w_hat_k w_hat_l] J2 (docs/theory.md, 7a); for
    members with inner_steps >= 2 the same from the expanded head (`finite_p_steps`, 7b)."""
    K = f.K
    phys = f.phys
    one = finite_p_exact(phys)
    scale = expand(phys.eta_J**2 * phys.eta_w**2 / (phys.V * phys.P * K), 2)
    parts = []
    if np.any(one):
        parts.append(np.where(expand(one, 2), scale * one_step_shift(f), 0.0))
    if not np.all(one):
        steps_scale = expand(phys.eta_J**2 / (phys.V * phys.P * K), 2)
        parts.append(np.where(expand(one, 2), 0.0, steps_scale * finite_v_shift(f)))
    return {"dQ": sum(parts[1:], parts[0])}


def one_step_shift(f) -> np.ndarray:
    """The bracket of the VP term for one inner step (docs/theory.md, 7a), (..., K, K)."""
    K = f.K
    Z, sigma_bar = noise_moment(f)
    i4 = f.i4  # [k, l, a, b]
    students = i4[..., :K, :]
    terms = np.einsum("...klab,...klab->...kl", Z[..., K:, K:], i4)
    terms = terms + np.einsum("...abkl,...klab->...kl", Z[..., :K, :K], i4[..., :K, :K]) / K
    Zwc = Z[..., :K, K:]  # [p, a, w_r, c_b]
    mixed = np.einsum("...kalb,...klab->...kl", Zwc, students)
    mixed = mixed + np.einsum("...lakb,...klab->...kl", Zwc, students)
    terms = terms + 2.0 * mixed / math.sqrt(K)
    terms = terms + expand(np.asarray(f.phys.noise_std, float) ** 2, 2) * sigma_bar * f.j2
    return 0.5 * (terms + np.swapaxes(terms, -1, -2))
