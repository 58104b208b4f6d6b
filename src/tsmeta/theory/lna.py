"""The linear-noise approximation around each seed's own ODE path: predicted noise bands.

Derivation: docs/theory.md, section 12. With X = x(alpha) + xi / sqrt(N), x the ODE path of a
seed from its own initial overlaps and xi(0) = 0, Sigma = Cov(xi) obeys

    d Sigma / d alpha = A Sigma + Sigma A^T + D(x),   A = df/dX at x,

D the diffusion matrix (`theory.diffusion`). Integrated in the independent coordinates
(R, the upper triangle of Q, w0): a full Q has Q_kl and Q_lk as one variable. Each record
interval is cut into substeps; on a substep A and D are frozen at its midpoint (the path
stepped there by RK4) and Sigma is advanced exactly for frozen A and D (Van Loan's block
exponential), which is stable for any step. The sd of eps_meta is the delta method.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tsmeta.settings import lna_substeps
from tsmeta.theory.closed_form import Physics, eps_meta_closed_form
from tsmeta.theory.diffusion import diffusion_matrix, parts_for
from tsmeta.theory.rhs import drift
from tsmeta.theory.trajectory import StateLayout

FD_STEP = 1e-6  # forward differences of the drift and of eps_meta


@lru_cache(maxsize=8)
def independent_coordinates(K: int, M: int) -> tuple[np.ndarray, np.ndarray]:
    """(embed (n, r), pick (r,)): full flat state = embed @ independent coordinates, and the
    full-layout position of each independent coordinate (R, Q_kl with k <= l, w0)."""
    layout = StateLayout(K, M)
    pick = list(range(K * M))
    pick += [K * M + k * K + l for k in range(K) for l in range(k, K)]
    pick += list(range(K * M + K * K, layout.size))
    embed = np.zeros((layout.size, len(pick)))
    for j, pos in enumerate(pick):
        embed[pos, j] = 1.0
        if K * M <= pos < K * M + K * K:  # Q_kl also sets Q_lk
            k, l = divmod(pos - K * M, K)
            embed[K * M + l * K + k, j] = 1.0
    pick = np.array(pick)
    for a in (embed, pick):
        a.flags.writeable = False
    return embed, pick


class PathNoise:
    """Drift, Jacobian and diffusion along the paths of a batch (members on axis 0)."""

    def __init__(self, T, phys: Physics, terms, K: int, M: int):
        self.T, self.phys, self.terms = T, phys, tuple(terms)
        self.layout = StateLayout(K, M)
        self.embed, self.pick = independent_coordinates(K, M)
        self.parts = parts_for(self.terms)

    def take(self, idx) -> PathNoise:
        return PathNoise(self.T[idx], self.phys.take(idx), self.terms, self.layout.K,
                         self.layout.M)  # fmt: skip

    def deriv(self, y, T=None, phys=None) -> np.ndarray:
        T = self.T if T is None else T
        phys = self.phys if phys is None else phys
        R, Q, w0 = self.layout.unpack(y)
        d = drift(R, Q, T, w0, phys, self.terms)
        return self.layout.pack(d["dR"], d["dQ"], d["dw0"])

    def jacobian(self, y) -> np.ndarray:
        """A (B, r, r) in the independent coordinates, forward differences (one batched
        drift call of (r + 1) B states)."""
        B, r = len(y), self.embed.shape[1]
        h = FD_STEP * np.maximum(1.0, np.abs(y[:, self.pick]))  # (B, r)
        shifted = y[None] + (h.T[:, :, None] * self.embed.T[:, None, :])  # (r, B, n)
        stack = np.concatenate([y[None], shifted]).reshape((r + 1) * B, -1)
        idx = np.tile(np.arange(B), r + 1)
        f = self.deriv(stack, self.T[idx], self.phys.take(idx)).reshape(r + 1, B, -1)
        f = f[..., self.pick]
        return np.moveaxis((f[1:] - f[0]) / h.T[:, :, None], 0, -1)  # [b, i, j] = df_i/dx_j

    def diffusion(self, y) -> np.ndarray:
        R, Q, w0 = self.layout.unpack(y)
        D = diffusion_matrix(R, Q, self.T, w0, self.phys, self.parts,
                             "second_order" in self.terms)  # fmt: skip
        return D[:, self.pick][:, :, self.pick]

    def rk4(self, y, h) -> np.ndarray:
        k1 = self.deriv(y)
        k2 = self.deriv(y + 0.5 * h * k1)
        k3 = self.deriv(y + 0.5 * h * k2)
        k4 = self.deriv(y + h * k3)
        return y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)

    def eps_gradient(self, y) -> np.ndarray:
        """d eps_meta / d(independent coordinates) (B, r), forward differences."""
        B, r = len(y), self.embed.shape[1]
        shifted = y[None] + FD_STEP * self.embed.T[:, None, :]
        stack = np.concatenate([y[None], shifted])  # (r + 1, B, n)
        R, Q, w0 = self.layout.unpack(stack.reshape((r + 1) * B, -1))
        idx = np.tile(np.arange(B), r + 1)
        eps = eps_meta_closed_form(R, Q, self.T[idx], w0, self.phys.take(idx))
        eps = eps.reshape(r + 1, B)
        return ((eps[1:] - eps[0]) / FD_STEP).T


def batched_expm(X, order: int = 12) -> np.ndarray:
    """exp(X) for a batch (..., m, m): scaling and squaring of a Taylor polynomial (scipy's
    expm spends most of its time per matrix; ours are small, many and of norm ~ 1)."""
    norm = np.abs(X).sum(axis=-2).max(axis=-1)  # 1-norm per matrix
    finite = np.isfinite(norm)
    squarings = int(np.ceil(np.log2(max(np.max(norm[finite], initial=0.0), 0.5)))) + 1
    squarings = max(squarings, 0)
    Y = X / 2.0**squarings
    eye = np.broadcast_to(np.eye(X.shape[-1]), X.shape)
    out, term = eye.copy(), eye
    for k in range(1, order + 1):
        term = term @ Y / k
        out = out + term
    for _ in range(squarings):
        out = out @ out
    return out


def frozen_step(A, D, h) -> tuple[np.ndarray, np.ndarray]:
    """(Phi, Q_h) with Sigma(h) = Phi Sigma(0) Phi^T + Q_h for constant A, D (Van Loan)."""
    r = A.shape[-1]
    top = np.concatenate([-A, D], axis=-1)
    bottom = np.concatenate([np.zeros_like(A), np.swapaxes(A, -1, -2)], axis=-1)
    F = batched_expm(h * np.concatenate([top, bottom], axis=-2))
    phi = np.swapaxes(F[..., r:, r:], -1, -2)
    q = phi @ F[..., :r, r:]
    return phi, 0.5 * (q + np.swapaxes(q, -1, -2))


def linear_noise(records, alphas, noise: PathNoise) -> np.ndarray:
    """Sigma (B, A, r, r) around the recorded paths `records` (B, A, n) of a batch, Sigma = 0
    at alphas[0]; NaN from a member's first non-finite record on. Each record interval
    restarts the path from its record (the ODE solution), so the paths are the ODE's."""
    B, A, _ = records.shape
    r = noise.embed.shape[1]
    out = np.full((B, A, r, r), np.nan)
    sigma = np.zeros((B, r, r))
    out[:, 0] = sigma
    for i, n_sub in enumerate(lna_substeps(alphas), start=1):
        live = np.all(np.isfinite(records[:, i - 1]), axis=1) & np.all(
            np.isfinite(records[:, i]), axis=1
        )
        live &= np.all(np.isfinite(sigma), axis=(1, 2))
        if not live.any():
            break
        part = noise.take(np.flatnonzero(live))
        y, sig = records[live, i - 1], sigma[live]
        h = (alphas[i] - alphas[i - 1]) / n_sub
        with np.errstate(all="ignore"):
            for _ in range(n_sub):
                mid = part.rk4(y, 0.5 * h)
                phi, q = frozen_step(part.jacobian(mid), part.diffusion(mid), h)
                sig = phi @ sig @ np.swapaxes(phi, -1, -2) + q
                y = part.rk4(mid, 0.5 * h)
        sigma = np.full((B, r, r), np.nan)
        sigma[live] = sig
        out[:, i] = sigma
    return out


def noise_sd(records, alphas, T, phys: Physics, terms, N: int) -> dict:
    """Predicted noise sd at N of R (B, A, K, M), Q (B, A, K, K), w0 (B, A, K) and eps_meta
    (B, A) around the recorded ODE paths (B, A, n) of a batch with parameters `phys` (B,)."""
    B, A, n = records.shape
    M = T.shape[-1]
    K = int(round((-(M + 1) + math.sqrt((M + 1) ** 2 + 4 * n)) / 2))
    phys = phys.broadcast(B)
    noise = PathNoise(T, phys, terms, K, M)
    sigma = linear_noise(records, alphas, noise)
    var = np.diagonal(sigma, axis1=-2, axis2=-1) @ noise.embed.T  # full layout (B, A, n)
    layout = StateLayout(K, M)
    R, Q, w0 = layout.unpack(np.sqrt(var / N).reshape(B * A, n))
    flat = records.reshape(B * A, n)
    ok = np.all(np.isfinite(flat), axis=1)
    grad = np.full((B * A, noise.embed.shape[1]), np.nan)
    idx = np.repeat(np.arange(B), A)[ok]
    if ok.any():
        grad[ok] = PathNoise(T[idx], phys.take(idx), terms, K, M).eps_gradient(flat[ok])
    eps_var = np.einsum("xi,xij,xj->x", grad, sigma.reshape(B * A, *sigma.shape[-2:]), grad)
    return {
        "R_sd": R.reshape(B, A, K, M),
        "Q_sd": Q.reshape(B, A, K, K),
        "w0_sd": w0.reshape(B, A, K),
        "eps_meta_sd": np.sqrt(np.maximum(eps_var, 0.0) / N).reshape(B, A),
    }
