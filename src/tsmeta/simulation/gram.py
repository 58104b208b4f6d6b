"""The Gram sampler: the exact finite-N dynamics as a Markov chain on G = [[T, R^T], [R, Q]] and
w0, at a cost per task that does not depend on N (docs/simulation.md, "The Gram sampler").

No N-vector exists. With W = [B; J] (d x N, d = M + K) and L L^T = G, W = sqrt(N) L E for
some E with orthonormal rows (the frame). An input x has i.i.d. N(0, 1) coordinates xi = E x
and an orthogonal part independent of them; the fields are L xi. One outer step
J' = J - (eta_J / sqrt(N)) C^T X (C: dL/dlambda of the inputs X that enter the J gradient) is

    A  = L_J - (eta_J / N) C^T Xi                 (the part in the frame),
    R' = A L_B^T,  Q' = A A^T + (eta_J / N)^2 Wishart_K(N - D, C^T C),  T' = T,

the Wishart being the Gram matrix of the orthogonal part, drawn through a (trapezoidal)
Bartlett factor. gamma < 1 adds the directions of dB_t to the frame, FO-MAML (one inner step)
those of the inner step's orthogonal part; D counts every frame direction. ANIL's J gradient
runs over training and validation inputs, so both enter C.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tsmeta import model
from tsmeta.settings import resolve_kernel
from tsmeta.simulation.samplers import Sampler, psd_root
from tsmeta.simulation.streams import ChiSquare, chi_square
from tsmeta.simulation.streams import randn as randn_in


def bartlett_factor(chi2: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """Lower trapezoidal Bartlett factor (..., k, m) of Wishart_k(n, I), m = min(k, n).

    chi2 (..., m): chi-square variates with n, n - 1, ..., n - m + 1 degrees of freedom (the
    squared diagonal); below (..., k, m): standard normals, only the part strictly below the
    diagonal is used. A A^T ~ Wishart_k(n, I) for every n >= 0: A is the LQ factor of a k x n
    standard normal matrix (rows i >= n are full Gaussian rows; n = 0 gives an empty factor).
    """
    k, m = below.shape[-2], below.shape[-1]
    diag = torch.diag_embed(chi2.sqrt())  # (..., m, m)
    if k > m:
        diag = torch.cat([diag, diag.new_zeros((*diag.shape[:-2], k - m, m))], dim=-2)
    return torch.tril(below, diagonal=-1) + diag


def _pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """x with n zero columns appended (coordinates on frame directions it has no part in)."""
    return torch.cat([x, x.new_zeros((*x.shape[:-1], n))], dim=-1) if n else x


def scale_root(coef: torch.Tensor) -> torch.Tensor:
    """A K x r root L_S of coef^T coef (coef (..., n, K), r = min(n, K)): L_S = R^T of the
    reduced QR of coef, lower triangular with a non-negative diagonal. Exact also where coef
    has lower rank (no Cholesky to fail)."""
    R = torch.linalg.qr(coef, mode="r").R
    # rows signed to a non-negative diagonal: the unique (Cholesky) root where coef has full
    # column rank, the one the fused kernel (simulation.gram_fused) computes
    sign = torch.where(R.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(R.dtype)
    return (R * sign.unsqueeze(-1)).transpose(-1, -2)


class GramSampler(Sampler):
    """The chain on (G, w0): FO-ANIL (any inner_steps), ANIL, FO-MAML (inner_steps = 1).

    The state (float64 whatever `dtype`: Q moves by O(1/N) per task) is G (S, d, d), ordered
    [B; J], and w0 (S, K). Frame dimensions, fixed for a run: d = K + M; D = d + m_B with
    m_B = min(M, N - d) for gamma < 1 (directions of dB_t off the frame); FO-MAML adds
    m_T = min(r_tr, N - D), r_tr = min(P, K) (the inner step's orthogonal part).
    """

    name = "gram"
    draws_description = (
        "per task: if gamma < 1, dB_t on the frame dB_frame (M, K + M), chi-square "
        "dB_chi (m_B) with N - K - M - i dof and normals dB_below (M, m_B); field coordinates "
        "xi (P + V, D); FO-MAML: coordinates xi_inner (V, m_T) of the validation inputs on the "
        "inner step's directions, chi-square inner_chi (m_T) with N - D - i dof, inner_below "
        "(min(P, K), m_T); the Wishart's chi-square w_chi (m) with N - D_all - i dof and "
        "normals w_below (r, m)"
    )

    def __init__(self, tasks, params, settings, device, dtype):
        super().__init__(tasks, params, settings, device, dtype)
        p = params
        N, K, M = p.N, p.K, p.M
        self.dtype = torch.float64
        if N < K + M:
            raise ValueError(f"sampler 'gram' needs N >= K + M, got N={N}, K + M={K + M}")
        as_tensor = lambda name: torch.as_tensor(  # noqa: E731
            np.asarray(tasks[name].values), dtype=self.dtype, device=device
        )
        T, R, Q = as_tensor("T"), as_tensor("R0"), as_tensor("Q0")
        self.G = torch.cat(
            [torch.cat([T, R.transpose(-1, -2)], -1), torch.cat([R, Q], -1)], -2
        ).contiguous()
        self.w0 = as_tensor("w0")
        self.d = K + M
        self.m_B = min(M, N - self.d) if p.gamma < 1 else 0
        self.D = self.d + self.m_B
        # the chain adapts J with one first-order inner step (FO-MAML; settings.SAMPLERS)
        self.adapts_J = self.algorithm.adapts_J
        self.r_inner = min(p.P, K)
        self.m_T = min(self.r_inner, N - self.D) if self.adapts_J else 0
        # rows of C in the J gradient: validation only, or training and validation (ANIL)
        self.r = min(p.P + p.V if self.algorithm.second_order else p.V, K)
        self.dof = N - self.D - self.m_T  # of the Wishart of the outer step
        self.fused = self._fused_kernel() if type(self) is GramSampler else None

    def _fused_kernel(self):
        """The compiled stretch of tasks (`simulation.gram_fused`), or None: eager."""
        kernel = resolve_kernel(self.params, self.settings, self.device.type)
        if kernel == "eager":
            return None
        from tsmeta.simulation import gram_fused  # numba, imported only where it runs

        return gram_fused.kernel(self.params)

    # --- hooks (small, so that tests can break them: negative controls) ------------------
    def wishart_dof(self) -> int:
        return self.dof

    def wishart_coef(self, coef_tr, coef_val):
        """Coefficients whose Gram is the Wishart scale: ANIL's J gradient sums over all inputs."""
        return coef_val if coef_tr is None else torch.cat([coef_tr, coef_val], dim=-2)

    def frame_extension(self) -> int:
        return self.m_B

    # --- draws -----------------------------------------------------------------------------
    def task_shapes(self, chunk):
        p = self.params
        M, N = p.M, p.N
        shapes = {}
        if p.gamma < 1:
            shapes["dB_frame"] = (chunk, M, self.d)
            shapes["dB_chi"] = ChiSquare((chunk,), tuple(N - self.d - i for i in range(self.m_B)))
            shapes["dB_below"] = (chunk, M, self.m_B)
        shapes["xi"] = (chunk, p.P + p.V, self.D)
        if self.adapts_J:
            shapes["xi_inner"] = (chunk, p.V, self.m_T)
            dof = N - self.D
            shapes["inner_chi"] = ChiSquare((chunk,), tuple(dof - i for i in range(self.m_T)))
            shapes["inner_below"] = (chunk, self.r_inner, self.m_T)
        dof = self.wishart_dof()
        m = max(0, min(self.r, dof))
        shapes["w_chi"] = ChiSquare((chunk,), tuple(dof - i for i in range(m)))
        shapes["w_below"] = (chunk, self.r, m)
        if p.noise_std > 0:
            shapes["zeta"] = (chunk, p.P + p.V)
        return shapes

    def prepare_chunk(self, draws):
        """For the fused kernel: the task teachers' coordinates B_t (S, chunk or 1, M, D) of
        the whole chunk, which depend on the draws and on L_B = chol(T) only (no task changes
        T); the same `_teacher_coords` as `advance`, so the kernel knows nothing of gamma."""
        if self.fused is not None:
            L_B = self._roots(self.G)[0].unsqueeze(1)  # (S, 1, M, d)
            keys = ("dB_frame", "dB_chi", "dB_below")
            draws["B_t"] = self._teacher_coords(L_B, *(draws.get(key) for key in keys))
        return draws

    # --- one task --------------------------------------------------------------------------
    def step(self, draws, c):
        if self.fused is None:
            return super().step(draws, c)
        self.steps(draws, c, c + 1)

    def steps(self, draws, start, stop):
        if self.fused is None:
            return super().steps(draws, start, stop)
        self.w0 = self.w0.contiguous()  # updated in place
        self.fused(self.G, self.w0, draws, start, stop)

    def _roots(self, G):
        L = psd_root(G)
        M = self.params.M
        return L[..., :M, :], L[..., M:, :]  # L_B (.., M, d), L_J (.., K, d)

    def _teacher_coords(self, L_B, frame, chi, below):
        """Task teacher B_t / sqrt(N) in the frame (.., M, D): gamma L_B + s dB_t / sqrt(N)."""
        p = self.params
        if p.gamma == 1:
            return L_B
        s, root_N = math.sqrt(1 - p.gamma**2), math.sqrt(p.N)
        on_frame = p.gamma * L_B + (s / root_N) * frame
        ext = self.frame_extension()
        off_frame = (s / root_N) * bartlett_factor(chi, below)[..., :ext]
        # (a forgotten extension, a negative control, keeps the coordinates' dimension)
        return torch.cat([on_frame, _pad(off_frame, self.m_B - ext)], dim=-1)

    def advance(self, task):
        p = self.params
        N, M, P = p.N, p.M, p.P
        take = lambda key: task[key].to(self.dtype) if key in task else None  # noqa: E731
        L_B, L_J = self._roots(self.G)
        B_t = self._teacher_coords(L_B, take("dB_frame"), take("dB_chi"), take("dB_below"))
        xi = take("xi")  # (S, P + V, D)
        # computed transposed, (S, K + M, P + V), and read through a transposed view: the
        # small-times-tall product is faster than (P + V, D) @ (D, K + M) on CPU and each
        # field column is contiguous for the activations (benchmarks/bench_simulator.py)
        W = torch.cat([_pad(L_J, self.D - self.d), B_t], dim=-2)
        fields = (W @ xi.transpose(-1, -2)).transpose(-1, -2)
        lam, nu_t = fields[..., : p.K], fields[..., p.K :]
        y = self._labels(nu_t, take("u"), take("zeta"))
        if self.adapts_J:
            coef, inputs, grad_w0 = self._fo_maml_gradients(lam, y, xi, L_J, take)
            scale = coef
        else:
            c_tr, c_val, grad_w0 = model.field_gradients(
                lam[:, :P], y[:, :P], lam[:, P:], y[:, P:], self.w0, act=self.act,
                eta_w=p.eta_w, inner_steps=p.inner_steps,
                second_order=self.algorithm.second_order,
            )  # fmt: skip
            # inputs in the J gradient: validation only (first order) or all (ANIL)
            coef = c_val if c_tr is None else torch.cat([c_tr, c_val], dim=-2)
            inputs = xi[:, P:] if c_tr is None else xi
            scale = self.wishart_coef(c_tr, c_val)
        step_J = p.eta_J / N
        J_frame = _pad(L_J, inputs.shape[-1] - self.d)  # J has no coordinate off [B; J]
        A = J_frame - step_J * coef.transpose(-1, -2) @ inputs  # (S, K, D_all)
        orth = scale_root(scale) @ bartlett_factor(take("w_chi"), take("w_below"))
        R = A[..., : self.d] @ L_B.transpose(-1, -2)
        Q = A @ A.transpose(-1, -2) + step_J**2 * orth @ orth.transpose(-1, -2)
        self.G[:, M:, :M] = R
        self.G[:, :M, M:] = R.transpose(-1, -2)
        self.G[:, M:, M:] = (Q + Q.transpose(-1, -2)) / 2
        self.w0 = self.w0 - (p.eta_w0_eff / N) * grad_w0

    def _fo_maml_gradients(self, lam, y, xi, L_J, take):
        """FO-MAML, one inner step: J_t = J - (eta_in / sqrt(N)) C_tr^T X_tr in a frame extended
        by the directions of its orthogonal part; validation fields at (J_t, w_t)."""
        p = self.params
        N, P = p.N, p.P
        step_in = p.eta_J_inner_eff / N
        # the loss gradient at (J, w0) is FO-ANIL's outer gradient with zero inner steps
        _, c_tr, g_tr = model.field_gradients(
            lam[:, :P], y[:, :P], lam[:, :P], y[:, :P], self.w0, act=self.act,
            eta_w=p.eta_w, inner_steps=0, second_order=False,
        )  # fmt: skip
        w_t = self.w0 - p.eta_w * g_tr
        inner_orth = scale_root(c_tr) @ bartlett_factor(take("inner_chi"), take("inner_below"))
        J_t = torch.cat(
            [
                _pad(L_J, self.D - self.d) - step_in * c_tr.transpose(-1, -2) @ xi[:, :P],
                -step_in * inner_orth,
            ],
            dim=-1,
        )  # (S, K, D + m_T)
        xi_val = torch.cat([xi[:, P:], take("xi_inner")], dim=-1)
        lam_val = xi_val @ J_t.transpose(-1, -2)
        _, c_val, grad_w = model.field_gradients(
            lam_val, y[:, P:], lam_val, y[:, P:], w_t, act=self.act,
            eta_w=p.eta_w, inner_steps=0, second_order=False,
        )  # fmt: skip
        return c_val, xi_val, grad_w

    # --- observables -----------------------------------------------------------------------
    def overlaps(self):
        M = self.params.M
        return self.G[:, M:, :M].clone(), self.G[:, M:, M:].clone()

    def norms(self):
        M = self.params.M
        return self.G[:, M:, M:].diagonal(dim1=-2, dim2=-1)

    def teacher_overlap(self):
        M = self.params.M
        return self.G[:, :M, :M].cpu().numpy().copy()

    def measurement_fields(self, s, gen, n, n_ex):
        """Fields of n fresh tasks given G: exact, with the frame extended by dB_t (gamma < 1)."""
        p = self.params
        M, N = p.M, p.N
        L_B, L_J = self._roots(self.G[s])
        randn = lambda *shape: randn_in(gen, shape, self.dtype, self.device, self.normals)  # noqa: E731
        if p.gamma < 1:
            frame = randn(n, M, self.d)
            chi = chi_square(gen, [N - self.d - i for i in range(self.m_B)], (n,), self.dtype,
                             self.device)  # fmt: skip
            B_t = self._teacher_coords(L_B, frame, chi, randn(n, M, self.m_B))
        else:
            B_t = L_B.expand(n, M, self.d)
        xi = randn(n, n_ex, self.D)
        return xi[..., : self.d] @ L_J.transpose(-1, -2), xi @ B_t.transpose(-1, -2)

    def state_dict(self):
        return {"G": self.G.cpu().clone(), "w0": self.w0.cpu().clone()}

    def load_state_dict(self, state):
        self.G = state["G"].to(self.device, self.dtype).contiguous()
        self.w0 = state["w0"].to(self.device, self.dtype)
