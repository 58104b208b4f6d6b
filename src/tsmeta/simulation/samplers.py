"""Samplers of the task stream: each owns the meta-learner state of a batch of seeds and turns
one task's random draws into the outer update (docs/simulation.md).

A sampler declares the random draws of a chunk of tasks (`task_shapes`), applies one task
(`advance`, on that task's draws), reports the order parameters (`overlaps`, `norms`),
draws the fields of fresh tasks for the Monte-Carlo eps_meta (`measurement_fields`) and
saves its state. Which sampler is exact for which run is declared in
`tsmeta.settings.SAMPLERS` (one line each).

* `DenseSampler`: draw each input x in R^N, compute the fields, assemble the J gradient.
* `ProjectedSampler` (FO-ANIL, ANIL): the networks see x only through the fields
  h = W x / sqrt(N), W = [J; B_t], exactly Gaussian with covariance G = W W^T / N; draw them
  directly. The J gradient sum_mu c_mu x_mu splits into the part in span(W), a function of
  the fields, and the orthogonal part, which given the c's is Gaussian: L xi P_perp with
  L L^T = sum c c^T and xi a fresh K x N standard normal matrix. O((P + V) d^2 + N K d).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import xarray as xr

from tsmeta import cost, model
from tsmeta.activations import activation
from tsmeta.algorithms import algorithm
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import streams


def _sym_sqrt(gram: torch.Tensor) -> torch.Tensor:
    """A matrix L with L L^T = gram for symmetric PSD gram (batched), robust to rank loss."""
    evals, evecs = torch.linalg.eigh(gram)
    return evecs * evals.clamp_min(0).sqrt().unsqueeze(-2) @ evecs.transpose(-1, -2)


_PLAIN: dict[str, Callable] = {}  # name -> the function as written
_DISABLED: dict[str, Callable] = {}  # name -> torch.compiler.disable of it (prepare_compile)


def eager_when_compiled(fn: Callable) -> Callable:
    """`fn` left out of a compiled update (`simulation.compile`). Like torch.compiler.disable,
    which as a decorator would import torch._dynamo in every simulate job (1.5 s, most of a
    small job's time) whether it compiles or not: `prepare_compile` makes the disabled twin."""
    _PLAIN[fn.__name__] = fn

    @functools.wraps(fn)
    def dispatch(*args):
        if torch.compiler.is_compiling():
            return _DISABLED[fn.__name__](*args)
        return fn(*args)

    return dispatch


def prepare_compile() -> None:
    """Before torch.compile of an update: the eager twins of the `eager_when_compiled` ones."""
    for name, fn in _PLAIN.items():
        _DISABLED.setdefault(name, torch.compiler.disable(fn))


# eager in a compiled update: the rank check reads a value back, a graph break either way, and
# compiling the fallback branch unconditionally was slower
@eager_when_compiled
def psd_root(gram: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a PSD matrix; the eigen-root where it is singular (e.g. J = B)."""
    L, info = torch.linalg.cholesky_ex(gram)
    if bool(info.any()):
        L = torch.where((info > 0)[..., None, None], _sym_sqrt(torch.nan_to_num(gram)), L)
    return L


@eager_when_compiled
def psd_solve(G: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """G^-1 rhs for PSD G; the pseudo-inverse where G is singular (any solution is exact there)."""
    x, info = torch.linalg.solve_ex(G, rhs)
    if bool(info.any()):
        x = torch.where(
            (info > 0)[..., None, None],
            torch.linalg.pinv(torch.nan_to_num(G), hermitian=True) @ rhs,
            x,
        )
    return x


class Sampler:
    """The interface every sampler implements (see the module doc)."""

    name = ""
    draws_description = ""  # the sampler's part of the `rng` attribute

    def __init__(self, tasks: xr.Dataset, params: RunParams, settings: SimSettings, device, dtype):
        self.params, self.settings, self.device, self.dtype = params, settings, device, dtype
        self.algorithm = algorithm(params.algorithm)  # its table line: what the update is
        self.act = activation(params.activation).torch()  # g and g_prime of the run
        self.normals = getattr(torch, settings.normals)  # precision of the standard normals
        self.chunk = settings.draw_chunk

    def task_shapes(self, chunk: int) -> dict[str, tuple]:
        """Shapes of the standard normals of `chunk` tasks, per seed, after u, in stream order."""
        raise NotImplementedError

    def prepare_chunk(self, draws: dict) -> dict:
        """What a sampler derives from a chunk's draws at once, before its tasks run."""
        return draws

    def step(self, draws: dict, c: int) -> None:
        """Apply task c of the chunk `draws` (tensors (S, chunk, ...)) to every seed."""
        self.advance({key: value[:, c] for key, value in draws.items()})

    def steps(self, draws: dict, start: int, stop: int) -> None:
        """Apply tasks start..stop of the chunk `draws` (a sampler may fuse them)."""
        for c in range(start, stop):
            self.step(draws, c)

    def advance(self, task: dict) -> None:
        """Apply one task, its draws `task` (tensors (S, ...)), to every seed: the update a
        sampler defines (`simulation.compile` compiles this method)."""
        raise NotImplementedError

    def overlaps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """R (S, K, M) and Q (S, K, K) of the current state."""
        raise NotImplementedError

    def norms(self) -> torch.Tensor:
        """Q_kk (S, K): what the divergence check watches."""
        raise NotImplementedError

    def teacher_overlap(self) -> np.ndarray:
        """T (S, M, M), constant along the run."""
        raise NotImplementedError

    def measurement_fields(self, s: int, gen, n: int, n_ex: int):
        """Fields (lambda (n, n_ex, K), nu_t (n, n_ex, M)) of n fresh tasks for seed s."""
        raise NotImplementedError

    def _labels(self, nu_t, u, zeta):
        """Task-teacher labels from its fields nu_t (S, n_ex, M), the task heads u and the
        label noise zeta (or None)."""
        y = model.network_output(nu_t, u, self.act)
        if zeta is not None:
            y = y + self.params.noise_std * zeta
        return y

    def mc_batch(self) -> int:
        """Monte-Carlo tasks measured at once (bounded memory: `tsmeta.cost`)."""
        return cost.mc_batch(self.name, self.params, self.settings)

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class WeightSampler(Sampler):
    """Samplers that hold the weights J (S, K, N), B (S, M, N) and w0 (S, K)."""

    def __init__(self, tasks, params, settings, device, dtype):
        super().__init__(tasks, params, settings, device, dtype)
        if "B" not in tasks or "J" not in tasks:
            raise ValueError(
                f"sampler {self.name!r} needs the weights B and J, which the tasks file does not "
                f"hold at N={params.N} (N (K + M) above tsmeta.tasks.VECTORS_MAX, only the "
                "initial overlaps are stored); use sampler 'gram' or 'auto'"
            )
        as_tensor = lambda name: torch.as_tensor(  # noqa: E731
            tasks[name].values, dtype=dtype, device=device
        )
        self.B = as_tensor("B")
        self.J = as_tensor("J")
        self.w0 = as_tensor("w0")

    # --- how the inputs are drawn: the only difference between the weight samplers --------
    def input_shapes(self, chunk: int) -> dict[str, tuple]:
        raise NotImplementedError

    def fields(self, W, noise):
        """Fields h = W x / sqrt(N) of the inputs drawn as `noise`, and G (or None)."""
        raise NotImplementedError

    def input_sum(self, coef, inputs, h, W, G, xi):
        """sum_mu coef_mu x_mu (S, K, N) over the inputs whose fields are h."""
        raise NotImplementedError

    # --- the common part -----------------------------------------------------------------
    def task_shapes(self, chunk):
        p = self.params
        shapes = {}
        if p.gamma < 1:
            shapes["dB"] = (chunk, p.M, p.N)
        shapes.update(self.input_shapes(chunk))
        if p.noise_std > 0:
            shapes["zeta"] = (chunk, p.P + p.V)
        return shapes

    def _task_teacher(self, task: dict) -> torch.Tensor:
        gamma = self.params.gamma
        if gamma < 1:
            return gamma * self.B + math.sqrt(1 - gamma**2) * task["dB"]
        return self.B

    def advance(self, task):
        p = self.params
        N, K, P = p.N, p.K, p.P
        B_t = self._task_teacher(task)
        u = task["u"]
        zeta = task.get("zeta")
        W = torch.cat([self.J, B_t], dim=-2)  # (S, K + M, N)
        X = task[self.input_key]
        h, G = self.fields(W, X)
        lam, nu_t = h[..., :K], h[..., K:]
        y = self._labels(nu_t, u, zeta)
        alg = self.algorithm
        if alg.adapts_J:
            grad_J, grad_w0 = model.maml_gradients(
                self.J, self.w0, X[:, :P], y[:, :P], X[:, P:], y[:, P:], act=self.act,
                eta_w=p.eta_w, eta_J_inner=p.eta_J_inner_eff, inner_steps=p.inner_steps,
                second_order=alg.second_order,
            )  # fmt: skip
        else:
            d_tr, d_val, grad_w0 = model.field_gradients(
                lam[:, :P], y[:, :P], lam[:, P:], y[:, P:], self.w0, act=self.act,
                eta_w=p.eta_w, inner_steps=p.inner_steps, second_order=alg.second_order,
            )  # fmt: skip
            # inputs entering the J gradient: validation only (first order) or all (ANIL)
            first = P if d_tr is None else 0
            d_lam = d_val if d_tr is None else torch.cat([d_tr, d_val], dim=-2)
            xi = task.get("xi")
            grad_J = self.input_sum(d_lam, X[:, first:], h[:, first:], W, G, xi)
            grad_J = grad_J / math.sqrt(N)
        self.J = self.J - p.eta_J * grad_J
        self.w0 = self.w0 - (p.eta_w0_eff / N) * grad_w0

    def overlaps(self):
        N = self.params.N
        return self.J @ self.B.transpose(-1, -2) / N, self.J @ self.J.transpose(-1, -2) / N

    def norms(self):
        return (self.J**2).sum(-1) / self.params.N

    def teacher_overlap(self):
        return (self.B @ self.B.transpose(-1, -2) / self.params.N).cpu().numpy()

    def measurement_fields(self, s, gen, n, n_ex):
        p = self.params
        N, K, M = p.N, p.K, p.M
        J, B = self.J[s], self.B[s]
        B_t = B.expand(n, M, N)
        if p.gamma < 1:
            B_t = p.gamma * B + math.sqrt(1 - p.gamma**2) * self._randn(gen, n, M, N)
        W = torch.cat([J.expand(n, K, N), B_t], dim=-2)
        h, _ = self.fields(W, self._randn(gen, n, n_ex, self.input_dim))
        return h[..., :K], h[..., K:]

    def _randn(self, gen, *shape):
        return streams.randn(gen, shape, self.dtype, self.device, self.normals)

    def state_dict(self):
        return {"J": self.J.cpu(), "w0": self.w0.cpu()}

    def load_state_dict(self, state):
        self.J = state["J"].to(self.device)
        self.w0 = state["w0"].to(self.device)


class DenseSampler(WeightSampler):
    """Inputs x in R^N drawn one task at a time: the reference, O((P + V) N (K + M)) per task."""

    name = "dense"
    draws_description = "dB (chunk, M, N) if gamma < 1; inputs x (chunk, P + V, N)"
    input_key = "X"

    def __init__(self, tasks, params, settings, device, dtype):
        super().__init__(tasks, params, settings, device, dtype)
        self.chunk = 1
        self.input_dim = params.N

    def input_shapes(self, chunk):
        return {"X": (chunk, self.params.P + self.params.V, self.params.N)}

    def fields(self, W, noise):
        return noise @ W.transpose(-1, -2) / math.sqrt(self.params.N), None

    def input_sum(self, coef, inputs, h, W, G, xi):
        return coef.transpose(-1, -2) @ inputs


class ProjectedSampler(WeightSampler):
    """Fields drawn with covariance G = W W^T / N, the orthogonal part of the J gradient from a
    fresh K x N Gaussian: exact for FO-ANIL and ANIL, O((P + V)(K + M)^2 + N K (K + M))."""

    name = "projected"
    draws_description = (
        "dB (chunk, M, N) if gamma < 1; standard normal field coordinates "
        "(chunk, P + V, K + M) and orthogonal part (chunk, K, N)"
    )
    input_key = "z"

    def __init__(self, tasks, params, settings, device, dtype):
        super().__init__(tasks, params, settings, device, dtype)
        self.input_dim = params.K + params.M

    def input_shapes(self, chunk):
        p = self.params
        return {"z": (chunk, p.P + p.V, p.K + p.M), "xi": (chunk, p.K, p.N)}

    def fields(self, W, noise):
        G = W @ W.transpose(-1, -2) / self.params.N
        # transposed product read through a view: faster, activations on contiguous columns
        return (psd_root(G) @ noise.transpose(-1, -2)).transpose(-1, -2), G

    def input_sum(self, coef, inputs, h, W, G, xi):
        """sum_mu coef_mu x_mu, exactly in distribution, from the fields h of the inputs."""
        N = self.params.N
        in_span = coef.transpose(-1, -2) @ h / math.sqrt(N)  # (S, K, d)
        L = psd_root(coef.transpose(-1, -2) @ coef)
        # orthogonal part L xi P_perp, P_perp = I - W^T (W W^T)^-1 W = I - W^T G^-1 W / N
        mixed = in_span - L @ (xi @ W.transpose(-1, -2)) / N
        coef_W = psd_solve(G, mixed.transpose(-1, -2)).transpose(-1, -2)
        return coef_W @ W + L @ xi
