"""Field covariance, adapted head, moments over the task head u, and eps_meta (docs/theory.md).

Arrays carry arbitrary leading batch dimensions (...). Run parameters enter through
`Physics`, whose fields are arrays broadcastable against those batch dimensions, so one call
can evaluate a sweep over learning rates, gamma, u statistics, ... at once. The Gaussian
integrals are those of the batch's activation (`Physics.gaussian`), one per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from types import ModuleType

import numpy as np

from tsmeta import activations
from tsmeta.algorithms import algorithm
from tsmeta.params import RunParams


@dataclass(frozen=True)
class Physics:
    """The run parameters the theory uses, as arrays of the batch shape (or 0-d)."""

    eta_J: np.ndarray
    eta_w: np.ndarray
    eta_w0: np.ndarray
    V: np.ndarray
    inner_steps: np.ndarray
    gamma: np.ndarray
    u_mean: np.ndarray
    u_std: np.ndarray
    noise_std: np.ndarray
    P: np.ndarray  # training examples per task (the finite-P term, the few-shot error)
    activation: np.ndarray  # its name (str), the same for every member (`gaussian`)
    # the inner J rate of algorithms whose inner loop moves J (MAML, FO-MAML), else 0: it
    # shifts the training fields of later inner steps (`finite_p_steps`)
    eta_J_inner: np.ndarray = 0.0
    N: np.ndarray | int = 0  # input dimension: the noise scale of a stochastic theory
    stream: np.ndarray | int = 0  # a member's random stream (a stochastic theory)

    @classmethod
    def from_params(cls, params: RunParams | Sequence[RunParams] | Physics) -> Physics:
        if isinstance(params, Physics):
            return params
        single = isinstance(params, RunParams)
        plist = [params] if single else list(params)

        def arr(get, dtype=float):
            a = np.array([get(p) for p in plist], dtype=dtype)
            return a[0] if single else a

        return cls(
            eta_J=arr(lambda p: p.eta_J),
            eta_w=arr(lambda p: p.eta_w),
            eta_w0=arr(lambda p: p.eta_w0_eff),
            V=arr(lambda p: p.V),
            inner_steps=arr(lambda p: p.inner_steps, dtype=np.int64),
            gamma=arr(lambda p: p.gamma),
            u_mean=arr(lambda p: p.u_mean),
            u_std=arr(lambda p: p.u_std),
            noise_std=arr(lambda p: p.noise_std),
            P=arr(lambda p: p.P),
            activation=arr(lambda p: p.activation, dtype=str),
            eta_J_inner=arr(lambda p: p.eta_J_inner_eff * algorithm(p.algorithm).adapts_J),
            N=arr(lambda p: p.N),
        )

    def take(self, idx) -> Physics:
        """Members `idx` of a batched (1-d) Physics; 0-d fields are shared and kept."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Physics(**{k: (v if np.ndim(v) == 0 else v[idx]) for k, v in values.items()})

    def broadcast(self, n: int) -> Physics:
        """A batch of `n` members: every field as its own (n,) array (shared values repeated)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Physics(**{k: np.broadcast_to(v, (n,)).copy() for k, v in values.items()})

    def gaussian(self) -> ModuleType:
        """The module of the Gaussian integrals of the batch's activation (I2, J2, I3, I4, F4,
        F4_block); members with different activations need separate batches."""
        names = np.unique(self.activation)
        if names.size != 1:
            raise ValueError(f"one activation per theory batch, got {names.tolist()}")
        return activations.activation(str(names[0])).gaussian()


def batch_axes(x, n_trailing: int) -> np.ndarray:
    """Append `n_trailing` unit axes so a batch-shaped parameter broadcasts against tensors."""
    x = np.asarray(x)
    return x.reshape(x.shape + (1,) * n_trailing)


def field_covariance(R, Q, T, gamma=1.0) -> np.ndarray:
    """Covariance of z = (lambda, nu, nu_task), shape (..., K + 2M, K + 2M)."""
    R, Q, T = (np.asarray(x, dtype=float) for x in (R, Q, T))
    g = batch_axes(np.asarray(gamma, dtype=float), 2)
    K, M = R.shape[-2:]
    batch = np.broadcast_shapes(R.shape[:-2], Q.shape[:-2], T.shape[:-2], g.shape[:-2])
    Rt = np.swapaxes(R, -1, -2)
    task = g**2 * T + (1.0 - g**2) * np.eye(M)
    blocks = [
        [Q, R, g * R],
        [Rt, T, g * T],
        [g * Rt, g * T, task],
    ]
    rows = [
        np.concatenate([np.broadcast_to(b, batch + b.shape[-2:]) for b in row], axis=-1)
        for row in blocks
    ]
    return np.concatenate(rows, axis=-2)


def head_from_i2(i2, w0, K: int, M: int, eta_w, inner_steps):
    """Adapted head w = a + G u from the I2 matrix of the fields (P -> infinity).

    `eta_w` and `inner_steps` may vary along the batch: the loop runs to the largest
    step count and each member stops accumulating at its own.
    """
    A = i2[..., :K, :K]
    Ct = i2[..., :K, K + M :]
    Dm = np.eye(K) - batch_axes(np.asarray(eta_w, float) / K, 2) * A
    S = batch_axes(np.asarray(inner_steps), 2)
    power = np.broadcast_to(np.eye(K), Dm.shape)  # Dm^min(j, S)
    geo = np.zeros(Dm.shape)  # sum_{j < min(j, S)} Dm^j
    for j in range(int(np.max(S))):
        on = j < S
        geo = geo + np.where(on, power, 0.0)
        power = np.where(on, Dm @ power, power)
    a = np.einsum("...kl,...l->...k", power, np.asarray(w0, float))
    G = batch_axes(np.asarray(eta_w, float) / np.sqrt(K * M), 2) * (geo @ Ct)
    return a, G


def adapted_head(R, Q, T, w0, *, K: int, M: int, eta_w, inner_steps, gamma, activation: str):
    """a (..., K) and G (..., K, M) with the adapted head w = a + G u (docs/theory.md, 3)."""
    i2 = activations.activation(activation).gaussian().I2(field_covariance(R, Q, T, gamma))
    return head_from_i2(i2, w0, K, M, eta_w, inner_steps)


def head_moments(a, G, u_mean, u_std, *, fourth: bool = True) -> dict:
    """Moments over u ~ N(u_mean 1, u_std^2 I) of w and c = (w/sqrt K, 0_M, -u/sqrt M).

    v = (w, c) = alpha + beta xi is Gaussian. Returns Ec (..., D), Ewc (..., K, D),
    Eww (..., K, K), Ecc (..., D, D), the parts alpha_w, alpha_c (means) and S_ww, S_wc,
    S_cc (covariances), and, if `fourth`, Ewwcc (`fourth_moments`).
    """
    K, M = G.shape[-2:]
    sK, sM = np.sqrt(K), np.sqrt(M)
    um = batch_axes(np.asarray(u_mean, float), 1)
    us2 = batch_axes(np.asarray(u_std, float) ** 2, 2)
    batch = np.broadcast_shapes(a.shape[:-1], G.shape[:-2], um.shape[:-1], us2.shape[:-2])
    aw = np.broadcast_to(a + um * G.sum(-1), batch + (K,))
    ac = np.concatenate(
        [aw / sK, np.zeros(batch + (M,)), np.broadcast_to(-um / sM, batch + (M,))], axis=-1
    )
    Gb = np.broadcast_to(G, batch + (K, M))
    bc = np.concatenate(
        [Gb / sK, np.zeros(batch + (M, M)), np.broadcast_to(-np.eye(M) / sM, batch + (M, M))],
        axis=-2,
    )
    Gt = np.swapaxes(Gb, -1, -2)
    bct = np.swapaxes(bc, -1, -2)
    S_ww = us2 * (Gb @ Gt)
    S_wc = us2 * (Gb @ bct)
    S_cc = us2 * (bc @ bct)
    out = {
        "Ec": ac,
        "Ewc": aw[..., :, None] * ac[..., None, :] + S_wc,
        "Eww": aw[..., :, None] * aw[..., None, :] + S_ww,
        "Ecc": ac[..., :, None] * ac[..., None, :] + S_cc,
        "alpha_w": aw,
        "alpha_c": ac,
        "S_ww": S_ww,
        "S_wc": S_wc,
        "S_cc": S_cc,
    }
    if fourth:
        out["Ewwcc"] = fourth_moments(out)
    return out


def fourth_moments(mom: dict) -> np.ndarray:
    """E[w_k w_l c_a c_b] (..., K, K, D, D) by Isserlis' theorem, from `head_moments`."""
    aw, ac = mom["alpha_w"], mom["alpha_c"]
    S_ww, S_wc, S_cc = mom["S_ww"], mom["S_wc"], mom["S_cc"]
    # axes (..., k, l, a, b); S_ka = S_wc[k, a], S_kl = S_ww, S_ab = S_cc
    k = aw[..., :, None, None, None]
    l = aw[..., None, :, None, None]
    ca = ac[..., None, None, :, None]
    cb = ac[..., None, None, None, :]
    Skl = S_ww[..., :, :, None, None]
    Sab = S_cc[..., None, None, :, :]
    Ska = S_wc[..., :, None, :, None]
    Skb = S_wc[..., :, None, None, :]
    Sla = S_wc[..., None, :, :, None]
    Slb = S_wc[..., None, :, None, :]
    return (
        k * l * ca * cb
        + k * l * Sab
        + k * ca * Slb
        + k * cb * Sla
        + l * ca * Skb
        + l * cb * Ska
        + ca * cb * Skl
        + Skl * Sab
        + Ska * Slb
        + Skb * Sla
    )


def eps_meta_closed_form(R, Q, T, w0, params: RunParams | Physics) -> np.ndarray:
    """Meta-generalisation error (P -> infinity head, noiseless task teacher), shape (...)."""
    phys = Physics.from_params(params)
    R = np.asarray(R, dtype=float)
    K, M = R.shape[-2:]
    i2 = phys.gaussian().I2(field_covariance(R, Q, T, phys.gamma))
    a, G = head_from_i2(i2, w0, K, M, phys.eta_w, phys.inner_steps)
    mom = head_moments(a, G, phys.u_mean, phys.u_std, fourth=False)
    return 0.5 * np.einsum("...ab,...ab->...", mom["Ecc"], i2)


# --- finite P: the sampling noise of the inner gradient (docs/theory.md, section 7) ----------


def head_noise_covariance(C, i2, w0, phys: Physics) -> np.ndarray:
    """Sigma_bar (..., K, K) = E_u Cov(one example's head gradient | u), at the head w0.

    With P training examples the first inner step is w0 - eta_w (h + xi): h the exact
    gradient, xi the mean of P i.i.d. zero-mean terms, Cov(xi | u) = Sigma(u) / P, where
    K Sigma_kl(u) = sum_ab c0_a c0_b F4(a, b, lambda_k, lambda_l) + sigma^2 A_kl - m_k m_l,
    c0 = (w0/sqrt K, 0_M, -u/sqrt M) and m_k = sum_a c0_a I2(z_a, lambda_k) (docs/theory.md,
    section 7). Averaged over u it needs only E[c0 c0^T]. `C` and `i2` are the
    field covariance and its I2, (..., D, D).
    """
    w0 = np.asarray(w0, dtype=float)
    K = w0.shape[-1]
    M = (C.shape[-1] - K) // 2
    lam, task = np.arange(K), np.arange(K + M, K + 2 * M)
    um = batch_axes(np.asarray(phys.u_mean, float), 2)
    us2 = batch_axes(np.asarray(phys.u_std, float) ** 2, 2)
    batch = np.broadcast_shapes(C.shape[:-2], w0.shape[:-1], um.shape[:-2])
    w0 = np.broadcast_to(w0, batch + (K,))
    # E_u[c0 c0^T] by blocks (students, task teacher)
    Eww = w0[..., :, None] * w0[..., None, :] / K
    Ewu = np.broadcast_to(-w0[..., :, None] * um / np.sqrt(K * M), batch + (K, M))
    Euu = np.broadcast_to((um**2 + us2 * np.eye(M)) / M, batch + (M, M))
    # the F4 part; with w0 = 0 (common: it stays 0 when u_mean = 0) only the task block counts
    if np.any(w0):
        used = np.concatenate([lam, task])
        Ecc = np.concatenate(
            [np.concatenate([Eww, Ewu], -1), np.concatenate([np.swapaxes(Ewu, -1, -2), Euu], -1)],
            -2,
        )
        f4 = phys.gaussian().F4_block(C, used, used, lam, lam)
    else:
        Ecc, f4 = Euu, phys.gaussian().F4_block(C, task, task, lam, lam)
    quartic = np.einsum("...ab,...abkl->...kl", Ecc, f4)
    # E[m m^T], m = I2(lambda, lambda) w0/sqrt K - I2(lambda, nu_t) u/sqrt M
    A, At = i2[..., :K, :K], i2[..., :K, K + M :]
    cross = A @ Ewu @ np.swapaxes(At, -1, -2)
    mm = A @ Eww @ A + cross + np.swapaxes(cross, -1, -2) + At @ Euu @ np.swapaxes(At, -1, -2)
    noise = batch_axes(np.asarray(phys.noise_std, float) ** 2, 2) * A
    return (quartic + noise - mm) / K


def finite_p_exact(phys: Physics) -> np.ndarray:
    """Where the finite-P formulas are exact: one inner step (the head is linear in the
    sampled gradient). Batch-shaped bool."""
    return np.asarray(phys.inner_steps) == 1


def eps_meta_p_closed_form(R, Q, T, w0, params: RunParams | Physics) -> np.ndarray:
    """The few-shot error: eps_meta with the head adapted on P examples (the run's P).

    eps_P = eps_meta + (eta_w^2 / (2 P K)) tr(Sigma_bar A), exact for inner_steps = 1
    (docs/theory.md, section 7); NaN where inner_steps >= 2 (not derived). Shape (...).
    """
    phys = Physics.from_params(params)
    R = np.asarray(R, dtype=float)
    K, M = R.shape[-2:]
    C = field_covariance(R, Q, T, phys.gamma)
    i2 = phys.gaussian().I2(C)
    a, G = head_from_i2(i2, w0, K, M, phys.eta_w, phys.inner_steps)
    mom = head_moments(a, G, phys.u_mean, phys.u_std, fourth=False)
    eps = 0.5 * np.einsum("...ab,...ab->...", mom["Ecc"], i2)
    sigma = head_noise_covariance(C, i2, w0, phys)
    extra = np.einsum("...kl,...lk->...", sigma, i2[..., :K, :K])
    eta_w, P = np.asarray(phys.eta_w, float), np.asarray(phys.P, float)
    eps_p = eps + eta_w**2 / (2.0 * P * K) * extra
    return np.where(finite_p_exact(phys), eps_p, np.nan)
