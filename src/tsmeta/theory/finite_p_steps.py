"""The finite-P term for inner_steps >= 2: the head's O(1/P) mean shift and covariance.

Derivation: docs/theory.md, section 7b. On P examples the inner step is
w_{s+1} = w_s - eta_w (A_hat w_s / K - b_hat) with A_hat = A + alpha, b_hat = b + beta the
training means of g g^T and y g / sqrt K (b = C~ u / sqrt(KM)). Expanding the head to second
order in the zero-mean (alpha, beta), w_hat = w + d1 + d2:

    d1_{s+1} = D d1_s + eta_w (beta - alpha w_s / K),  d2_{s+1} = D d2_s - (eta_w / K) alpha d1_s,

d1 = L n is linear in n = (vec alpha, beta), whose covariance (given u) is Sigma_n / P with
F4 on (lambda lambda lambda lambda), (lambda lambda lambda nu~), (nu~ nu~ lambda lambda). Then
E[w_hat] = w + E[d2], E[w_hat w_hat^T] = w w^T + w E[d2]^T + E[d2] w^T + L Sigma_n L^T / P,
E[w_hat u^T] = w u^T + E[d2] u^T, up to O(1/P^2). The first-order drifts (dR, dQ through
E[w c], dw0 through E[c]) are linear in these moments: this term is their change. For one
step it is the term `finite_p` (d2 = 0), which is exact; for S >= 2 a remainder O(1/P^2) is
left, and the finite-V term's O(1/(VP)) part is not derived.

Applied to the members with inner_steps >= 2, every algorithm's first-order part; for FO-MAML
the inner J steps add an O(eta_J / P) shift of the training fields (docs/theory.md, 9), and for
ANIL and MAML the second-order part has its own O(1/P) terms, neither derived.
"""

from __future__ import annotations

import math

import numpy as np

from tsmeta.theory.closed_form import batch_axes as expand
from tsmeta.theory.u_average import average, u_nodes

DOC = "finite-P term for inner_steps >= 2: the head's O(1/P) mean shift and covariance"


def applies(settings, name: str) -> bool:
    """The rule of `rhs.TERMS`: the `finite_p` setting, every algorithm (members with S >= 2)."""
    return bool(settings.finite_p)


def noise_covariance(f, u) -> np.ndarray:
    """P times the covariance of n = (vec alpha, beta) given u: (..., Q, K^2 + K, K^2 + K)."""
    K, M = f.K, f.M
    lam, task = np.arange(K), np.arange(K + M, K + 2 * M)
    gaussian = f.gaussian
    A = f.i2[..., :K, :K]
    Cu = np.einsum("...km,...zm->...zk", f.i2[..., :K, K + M :], u)  # (C~ u)_k
    aa = (
        gaussian.F4_block(f.C, lam, lam, lam, lam)
        - A[..., :, :, None, None] * A[..., None, None, :, :]
    )
    f4_ab = gaussian.F4_block(f.C, lam, lam, lam, task)  # [i, j, k, m]
    ab = (
        np.einsum("...ijkm,...zm->...zijk", f4_ab, u)
        - A[..., None, :, :, None] * Cu[..., :, None, None, :]
    )
    ab = ab / math.sqrt(K * M)
    f4_bb = gaussian.F4_block(f.C, task, task, lam, lam)  # [m, m', i, j]
    bb = np.einsum("...mnij,...zm,...zn->...zij", f4_bb, u, u) / M
    noise2 = expand(np.asarray(f.phys.noise_std, float) ** 2, 2)
    bb = bb + noise2[..., None, :, :] * A[..., None, :, :]
    bb = (bb - Cu[..., :, None] * Cu[..., None, :] / M) / K
    ext = bb.shape[:-2]
    aa = np.broadcast_to(
        aa.reshape(aa.shape[:-4] + (K * K, K * K))[..., None, :, :], ext + (K * K,) * 2
    )
    ab = ab.reshape(ext + (K * K, K))
    top = np.concatenate([aa, ab], -1)
    bottom = np.concatenate([np.swapaxes(ab, -1, -2), bb], -1)
    return np.concatenate([top, bottom], -2)


def field_shift(f, u, w_s, earlier) -> np.ndarray:
    """sum over t < s of sum_k <d(delta_s g_l)/d lambda_k e_t,k> (..., Q, K): the mean change
    of step s's head gradient, times -P sqrt(K) / eta_J_inner, when the inner J steps t < s
    have moved every training field by -(eta_J_inner / P) e_t, e_t,k = delta_t w_t,k g'_k /
    sqrt K (its own example; docs/theory.md, 7b). With the heads w_s, w_t at the nodes."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    ext = w_s.shape[:-1]
    teacher = np.broadcast_to(-u / math.sqrt(M), ext + (M,))

    def coefficients(w):
        return np.concatenate([w / sK, np.zeros(ext + (M,)), teacher], -1)

    i4 = f.i4
    kk = np.einsum("...kkla->...kla", i4[..., :K, :])  # I4(k, k, l, a), l a student
    ll = np.einsum("...llab->...lab", i4)  # I4(l, l, a, b)
    j2 = np.einsum("...ll->...l", f.j2)
    noise2 = expand(np.asarray(f.phys.noise_std, float) ** 2, 2)
    c_s = coefficients(w_s)
    total = np.zeros(ext + (K,))
    for w_t in earlier:
        c_t = coefficients(w_t)
        # (w_s,k w_t,k / K) <g'_k g'_k g_l delta_t> + (w_t,l / sK) <delta_s delta_t g'_l g'_l>
        first = np.einsum("...zk,...kla,...za->...zl", w_s * w_t / K, kk, c_t)
        second = np.einsum("...za,...lab,...zb->...zl", c_s, ll, c_t) + noise2 * j2[..., None, :]
        total = total + first + w_t / sK * second
    return total


def head_shift(f, u):
    """Per node u: the P = infinity head w_S (..., Q, K), the head's O(1/P) mean shift
    (..., Q, K) (E[d2], plus for MAML and FO-MAML the shift of the training fields by the inner
    J steps, `field_shift`) and L Sigma_n L^T (..., Q, K, K), both times P; members stop at
    their own inner_steps."""
    K, M = f.K, f.M
    A = f.i2[..., :K, :K]
    eta_w = np.asarray(f.phys.eta_w, float)
    steps = np.asarray(f.phys.inner_steps)
    Dm = np.eye(K) - expand(eta_w / K, 2) * A
    sigma_n = noise_covariance(f, u)
    ext = sigma_n.shape[:-2]
    b = np.einsum("...km,...zm->...zk", f.i2[..., :K, K + M :], u) / math.sqrt(K * M)
    w = np.broadcast_to(np.asarray(f.w0, float)[..., None, :], ext + (K,))
    L = np.zeros(ext + (K, K * K + K))
    d2 = np.zeros(ext + (K,))
    eye = np.eye(K)
    ew = expand(eta_w, 2)
    rate_J = expand(eta_w * np.asarray(f.phys.eta_J_inner, float) / math.sqrt(K), 2)
    earlier = []  # the heads w_t of the earlier steps
    for s in range(int(steps.max())):
        on = expand(s < steps, 3)
        cross = np.einsum("...zab,...zkb->...zak", sigma_n, L)  # E[n_a d1_k] P, a = (i, j)
        e = np.einsum("...zijj->...zi", cross[..., : K * K, :].reshape(ext + (K, K, K)))
        d2_next = np.einsum("...kl,...zl->...zk", Dm, d2) - expand(eta_w / K, 2) * e
        if earlier and np.any(rate_J):
            d2_next = d2_next + rate_J * field_shift(f, u, w, earlier)
        # d1_{s+1} = D d1_s + eta_w (beta - alpha w_s / K): the map from n
        drive = np.concatenate(
            [-(eye[:, :, None] * w[..., None, None, :]).reshape(ext + (K, K * K)) / K,
             np.broadcast_to(eye, ext + (K, K))], -1,
        )  # fmt: skip
        L_next = np.einsum("...kl,...zla->...zka", Dm, L) + ew[..., None] * drive
        w_next = np.einsum("...kl,...zl->...zk", Dm, w) + ew * b
        earlier.append(w)
        d2 = np.where(on[..., 0], d2_next, d2)
        L = np.where(on, L_next, L)
        w = np.where(on[..., 0], w_next, w)
    cov = np.einsum("...zka,...zab,...zlb->...zkl", L, sigma_n, L)
    return w, d2, cov


def moment_drift(f, Eww, Ew, Ewu) -> dict:
    """The first-order dR, dQ, dw0 (docs/theory.md, 6) of the head moments E[w w^T] (..., K, K),
    E[w] (..., K), E[w u^T] (..., K, M): linear in them."""
    K, M = f.K, f.M
    sK, sM = math.sqrt(K), math.sqrt(M)
    Ewc = np.concatenate([Eww / sK, np.zeros(Ewu.shape), -Ewu / sM], -1)  # (..., K, D)
    Ec = np.concatenate([Ew / sK, np.zeros(Ew.shape[:-1] + (2 * M,))], -1)
    eta_J = expand(np.asarray(f.phys.eta_J, float), 2)
    dR = -(eta_J / sK) * np.einsum("...ka,...kna->...kn", Ewc, f.i3[..., :, K : K + M, :])
    X = np.einsum("...pa,...pqa->...pq", Ewc, f.i3[..., :, :K, :])
    dQ = -(eta_J / sK) * (X + np.swapaxes(X, -1, -2))
    dw0 = -(expand(f.phys.eta_w0, 1) / sK) * np.einsum("...a,...ka->...k", Ec, f.i2[..., :K, :])
    return {"dR": dR, "dQ": dQ, "dw0": dw0}


def shifted_moments(f):
    """P times the O(1/P) changes of E[w w^T], E[w], E[w u^T] (averaged over u)."""
    u, weights = u_nodes(f.M, f.phys.u_mean, f.phys.u_std)
    w, d2, cov = head_shift(f, u)
    outer = w[..., :, None] * d2[..., None, :]
    Eww = average(outer + np.swapaxes(outer, -1, -2) + cov, weights, 2)
    Ewu = average(d2[..., :, None] * u[..., None, :], weights, 2)
    return Eww, average(d2, weights, 1), Ewu


def finite_p_steps_term(f) -> dict:
    """The O(1/P) change of the first-order dR, dQ, dw0 for members with inner_steps >= 2."""
    several = np.asarray(f.phys.inner_steps) >= 2
    if not np.any(several):
        return {}
    drift = moment_drift(f, *shifted_moments(f))
    scale = np.where(several, 1.0 / np.asarray(f.phys.P, float), 0.0)
    return {key: expand(scale, value.ndim - scale.ndim) * value for key, value in drift.items()}


def finite_v_shift(f) -> np.ndarray:
    """P times the O(1/P) change of K <e_k e_l> (the finite-V term without eta_J^2 / (V K)),
    (..., K, K): the pairs of d1's and the single d2's in E[w_k w_l c_a c_b] I4(k, l, a, b)
    and E[w_k w_l] sigma^2 J2(k, l) (docs/theory.md, 7b); for one step it is the term
    `finite_vp`'s (d2 = 0, Cov d1 = eta_w^2 Sigma(u) / P)."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    u, weights = u_nodes(M, f.phys.u_mean, f.phys.u_std)
    w, d2, cov = head_shift(f, u)
    ext = w.shape[:-1]
    c = np.concatenate(
        [w / sK, np.zeros(ext + (M,)), np.broadcast_to(-u / math.sqrt(M), ext + (M,))], -1
    )
    dc = np.concatenate([d2 / sK, np.zeros(ext + (2 * M,))], -1)
    cov_wc = np.concatenate([cov / sK, np.zeros(ext + (K, 2 * M))], -1)  # [k, a]
    i4 = f.i4  # [k, l, a, b], symmetric in a, b
    cc = np.einsum("...za,...zb,...klab->...zkl", c, c, i4)
    total = cov * cc
    total = (
        total
        + w[..., :, None]
        * w[..., None, :]
        * np.einsum("...zab,...klab->...zkl", cov, i4[..., :K, :K])
        / K
    )
    # one d1 in w_k (or w_l), the other in c_a (or c_b): four pairs, two by two equal
    mixed = np.einsum("...zka,...zb,...klab->...zkl", cov_wc, c, i4)  # w_l cov_c[k, a] c_b
    total = total + 2.0 * (w[..., None, :] * mixed + w[..., :, None] * np.swapaxes(mixed, -1, -2))
    # a single d2 (the head's mean shift) in one of the four factors
    total = total + (d2[..., :, None] * w[..., None, :] + w[..., :, None] * d2[..., None, :]) * cc
    dcc = np.einsum("...za,...zb,...klab->...zkl", dc, c, i4)
    total = total + 2.0 * w[..., :, None] * w[..., None, :] * dcc
    noise2 = expand(np.asarray(f.phys.noise_std, float) ** 2, 3)
    second = cov + d2[..., :, None] * w[..., None, :] + w[..., :, None] * d2[..., None, :]
    total = total + noise2 * second * f.j2[..., None, :, :]
    total = average(total, weights, 2)
    return 0.5 * (total + np.swapaxes(total, -1, -2))
