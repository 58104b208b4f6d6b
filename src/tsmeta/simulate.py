"""Simulation stage: finite-N online meta-learning, batched over seeds, in PyTorch.

Two samplers give the same distribution of every outer update:

* `dense`: draw each input x in R^N, compute the fields, assemble the J gradient from x.
* `projected` (FO-ANIL, ANIL): the networks see x only through the fields
  h = W x / sqrt(N), W = [J; B_t], which are exactly Gaussian with covariance
  G = W W^T / N; draw them directly. The J gradient sum_mu c_mu x_mu (c_mu = dL/dlambda_mu)
  splits into the part in span(W), a function of the fields, and the orthogonal part
  sum_mu c_mu x_perp_mu, which given the c's is Gaussian: L xi P_perp with L L^T = sum c c^T
  and xi a fresh K x N standard normal matrix. Exact, O((P + V) d^2 + N K d) per task.

Random numbers: every seed has its own `torch.Generator` for the task stream and another
for the Monte-Carlo measurement of eps_meta, so a seed's trajectory does not depend on
which other seeds share its batch. See `RNG_DESCRIPTION`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from tsmeta import model
from tsmeta.io import describe, params_to_attrs, versions
from tsmeta.params import RunParams

log = logging.getLogger(__name__)

SAMPLERS = ("auto", "projected", "dense")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float64", "float32")
PROJECTED_ALGORITHMS = ("fo-anil", "anil")

RNG_DESCRIPTION = (
    "per seed s: task stream torch.Generator(device).manual_seed(numpy SeedSequence([s, 1])"
    ".generate_state(1)[0]), measurement stream likewise with [s, 2]; task draws in chunks of "
    "`draw_chunk` tasks, in order: u (chunk, M); dB (chunk, M, N) if gamma < 1; inputs "
    "(projected: standard normal field coordinates (chunk, P + V, K + M) and orthogonal part "
    "(chunk, K, N); dense: x (P + V, N) per task); label noise (chunk, P + V) if noise_std > 0"
)


@dataclass(frozen=True)
class SimSettings:
    """How to simulate (not what): none of these changes the distribution of the dynamics."""

    sampler: str = "auto"
    device: str = "auto"
    dtype: str = "float64"
    mc_tasks: int = 50
    mc_adapt: int = 20000  # its O(1/mc_adapt) bias must stay below the MC error
    mc_test: int = 2000
    mc_every: int = 3  # Monte Carlo at every mc_every-th record (and the last); NaN elsewhere
    draw_chunk: int = 64
    checkpoint_every: int = 0  # tasks between checkpoints; 0: no checkpoints
    divergence_threshold: float = 1e6  # on max_k Q_kk

    def __post_init__(self):
        for key, allowed in (("sampler", SAMPLERS), ("device", DEVICES), ("dtype", DTYPES)):
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"{key} must be one of {list(allowed)}, got {getattr(self, key)!r}"
                )
        for key in ("mc_tasks", "mc_adapt", "mc_test", "mc_every", "draw_chunk"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> SimSettings:
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown simulation setting(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)


def resolve_sampler(sampler: str, algorithm: str) -> str:
    if sampler == "auto":
        return "projected" if algorithm in PROJECTED_ALGORITHMS else "dense"
    if sampler == "projected" and algorithm not in PROJECTED_ALGORITHMS:
        raise ValueError(
            f"sampler 'projected' is exact only for algorithm in {list(PROJECTED_ALGORITHMS)} "
            f"(MAML's inner step moves J along the training inputs); got algorithm "
            f"{algorithm!r}: use sampler 'dense' or 'auto'"
        )
    return sampler


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(device)


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    state = int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def _sym_sqrt(gram: torch.Tensor) -> torch.Tensor:
    """A matrix L with L L^T = gram for symmetric PSD gram (batched), robust to rank loss."""
    evals, evecs = torch.linalg.eigh(gram)
    return evecs * evals.clamp_min(0).sqrt().unsqueeze(-2) @ evecs.transpose(-1, -2)


def psd_root(gram: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a PSD matrix; the eigen-root where it is singular (e.g. J = B)."""
    L, info = torch.linalg.cholesky_ex(gram)
    if bool(info.any()):
        L = torch.where((info > 0)[..., None, None], _sym_sqrt(torch.nan_to_num(gram)), L)
    return L


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


class Simulation:
    """One run: all seeds of one parameter set, from the task-generation state."""

    def __init__(self, tasks: xr.Dataset, params: RunParams, settings: SimSettings | None = None):
        self.params = params
        self.settings = settings or SimSettings()
        self.sampler = resolve_sampler(self.settings.sampler, params.algorithm)
        self.device = resolve_device(self.settings.device)
        self.dtype = getattr(torch, self.settings.dtype)
        self.seeds = [int(s) for s in tasks["seed"].values]
        as_tensor = lambda name: torch.as_tensor(  # noqa: E731
            tasks[name].values, dtype=self.dtype, device=self.device
        )
        self.B = as_tensor("B")
        self.J = as_tensor("J")
        self.w0 = as_tensor("w0")
        self.T = (self.B @ self.B.transpose(-1, -2) / params.N).cpu().numpy()
        self.t = 0
        S = len(self.seeds)
        self.alive = torch.ones(S, dtype=torch.bool, device=self.device)
        self.alpha_diverged = np.full(S, np.nan)
        self.task_gens = [_generator(s, 1, self.device) for s in self.seeds]
        self.mc_gens = [_generator(s, 2, self.device) for s in self.seeds]
        self.records = {"t": [], "R": [], "Q": [], "w0": [], "eps_mc": [], "eps_mc_err": []}
        self.wall_time = 0.0

    # --- random draws ------------------------------------------------------
    def _randn(self, gen, *shape):
        return torch.randn(*shape, generator=gen, dtype=self.dtype, device=self.device)

    def _draw_chunk(self, chunk: int) -> dict:
        """The task stream of the next `chunk` tasks, drawn seed by seed into (S, chunk, ...)."""
        p, N, K, M = self.params, self.params.N, self.params.K, self.params.M
        n_ex = p.P + p.V
        shapes = {"u": (chunk, M)}
        if p.gamma < 1:
            shapes["dB"] = (chunk, M, N)
        if self.sampler == "projected":
            shapes["z"] = (chunk, n_ex, K + M)
            shapes["xi"] = (chunk, K, N)
        else:
            shapes["X"] = (chunk, n_ex, N)
        if p.noise_std > 0:
            shapes["zeta"] = (chunk, n_ex)
        S = len(self.seeds)
        draws = {
            key: torch.empty((S, *shape), dtype=self.dtype, device=self.device)
            for key, shape in shapes.items()
        }
        for s, gen in enumerate(self.task_gens):
            for key, shape in shapes.items():
                torch.randn(
                    shape, generator=gen, dtype=self.dtype, device=self.device, out=draws[key][s]
                )
        draws["u"] = p.u_mean + p.u_std * draws["u"]
        return draws

    # --- one outer step ----------------------------------------------------
    def _task_teacher(self, draws: dict, c: int) -> torch.Tensor:
        gamma = self.params.gamma
        if gamma < 1:
            return gamma * self.B + math.sqrt(1 - gamma**2) * draws["dB"][:, c]
        return self.B

    def _labels(self, nu_t, u, zeta):
        y = model.network_output(nu_t, u)
        if zeta is not None:
            y = y + self.params.noise_std * zeta
        return y

    def step(self, draws: dict, c: int) -> None:
        p = self.params
        N, K, P = p.N, p.K, p.P
        B_t = self._task_teacher(draws, c)
        u = draws["u"][:, c]
        zeta = draws["zeta"][:, c] if "zeta" in draws else None
        W = torch.cat([self.J, B_t], dim=-2)  # (S, K + M, N)
        X = draws["z" if self.sampler == "projected" else "X"][:, c]
        h, G = self._fields(W, X)
        lam, nu_t = h[..., :K], h[..., K:]
        y = self._labels(nu_t, u, zeta)
        if p.algorithm in ("maml", "fo-maml"):
            grad_J, grad_w0 = model.maml_gradients(
                self.J, self.w0, X[:, :P], y[:, :P], X[:, P:], y[:, P:],
                eta_w=p.eta_w, eta_J_inner=p.eta_J_inner_eff, inner_steps=p.inner_steps,
                second_order=p.algorithm == "maml",
            )  # fmt: skip
        else:
            d_tr, d_val, grad_w0 = model.field_gradients(
                lam[:, :P], y[:, :P], lam[:, P:], y[:, P:], self.w0,
                eta_w=p.eta_w, inner_steps=p.inner_steps, second_order=p.algorithm == "anil",
            )  # fmt: skip
            # inputs entering the J gradient: validation only (first order) or all (ANIL)
            first = P if d_tr is None else 0
            d_lam = d_val if d_tr is None else torch.cat([d_tr, d_val], dim=-2)
            if self.sampler == "projected":
                grad_J = self._projected_input_sum(d_lam, h[:, first:], W, G, draws["xi"][:, c])
            else:
                grad_J = d_lam.transpose(-1, -2) @ X[:, first:]
            grad_J = grad_J / math.sqrt(N)
        self.J = self.J - p.eta_J * grad_J
        self.w0 = self.w0 - (p.eta_w0_eff / N) * grad_w0
        self.t += 1

    def _fields(self, W, noise):
        """Fields h = W x / sqrt(N) of inputs x, and G = W W^T / N (projected sampler only).

        dense: `noise` are the inputs x (..., n_ex, N); projected: standard normal field
        coordinates (..., n_ex, K + M), turned into fields with covariance G exactly.
        """
        if self.sampler == "projected":
            G = W @ W.transpose(-1, -2) / self.params.N
            return noise @ psd_root(G).transpose(-1, -2), G
        return noise @ W.transpose(-1, -2) / math.sqrt(self.params.N), None

    def _projected_input_sum(self, coef, h, W, G, xi):
        """sum_mu coef_mu x_mu, exactly in distribution, from the fields h of the inputs."""
        N = self.params.N
        in_span = coef.transpose(-1, -2) @ h / math.sqrt(N)  # (S, K, d)
        L = psd_root(coef.transpose(-1, -2) @ coef)
        # orthogonal part L xi P_perp, P_perp = I - W^T (W W^T)^-1 W = I - W^T G^-1 W / N
        mixed = in_span - L @ (xi @ W.transpose(-1, -2)) / N
        coef_W = psd_solve(G, mixed.transpose(-1, -2)).transpose(-1, -2)
        return coef_W @ W + L @ xi

    def check_divergence(self) -> None:
        """Mark seeds whose state is non-finite or exploding; their records become NaN.

        Checked once per chunk of tasks; a diverged seed keeps running on NaN/inf values,
        which stay confined to its own slice of every batched operation.
        """
        q_max = (self.J**2).sum(-1).amax(-1) / self.params.N
        ok = torch.isfinite(q_max) & torch.isfinite(self.w0).all(-1)
        ok &= q_max < self.settings.divergence_threshold
        newly = (self.alive & ~ok).cpu().numpy()
        for s in np.flatnonzero(newly):
            self.alpha_diverged[s] = self.t / self.params.N
            log.warning("seed %d diverged at alpha = %.4g", self.seeds[s], self.alpha_diverged[s])
        self.alive &= ok

    # --- observables -------------------------------------------------------
    def record(self) -> None:
        N = self.params.N
        self.check_divergence()
        dead = (~self.alive).cpu().numpy()

        def masked(x):
            x = x.cpu().numpy().copy()
            x[dead] = np.nan
            return x

        self.records["t"].append(self.t)
        self.records["R"].append(masked(self.J @ self.B.transpose(-1, -2) / N))
        self.records["Q"].append(masked(self.J @ self.J.transpose(-1, -2) / N))
        self.records["w0"].append(masked(self.w0))
        index = len(self.records["t"]) - 1
        if index % self.settings.mc_every == 0 or self.t == self.params.total_steps:
            mean, err = self.eps_meta_monte_carlo()
        else:
            mean, err = np.full(len(self.seeds), np.nan), np.full(len(self.seeds), np.nan)
        mean[dead], err[dead] = np.nan, np.nan
        self.records["eps_mc"].append(mean)
        self.records["eps_mc_err"].append(err)

    @torch.no_grad()
    def eps_meta_monte_carlo(self) -> tuple[np.ndarray, np.ndarray]:
        """eps_meta by plain Monte Carlo: sampled tasks, a finite adaptation set, a test set.

        The head is adapted from w0 with the inner rule on `mc_adapt` noisy examples; the error
        is the mean of (1/2)(s - y)^2 over `mc_test` examples against the noiseless task
        teacher. Inputs come from the run's sampler (projected: exact Gaussian fields).
        """
        p, st = self.params, self.settings
        N, K, M = p.N, p.K, p.M
        n_ex = st.mc_adapt + st.mc_test
        means, errs = [], []
        batch = st.mc_tasks if self.sampler == "projected" else max(1, 2_000_000 // (n_ex * N))
        for s, gen in enumerate(self.mc_gens):
            per_task = []
            J, B = self.J[s], self.B[s]
            for start in range(0, st.mc_tasks, batch):
                n = min(batch, st.mc_tasks - start)
                u = p.u_mean + p.u_std * self._randn(gen, n, M)
                B_t = B.expand(n, M, N)
                if p.gamma < 1:
                    B_t = p.gamma * B + math.sqrt(1 - p.gamma**2) * self._randn(gen, n, M, N)
                W = torch.cat([J.expand(n, K, N), B_t], dim=-2)
                dim = K + M if self.sampler == "projected" else N
                h, _ = self._fields(W, self._randn(gen, n, n_ex, dim))
                lam, nu_t = h[..., :K], h[..., K:]
                y = model.network_output(nu_t, u)
                y_adapt = y[:, : st.mc_adapt]
                if p.noise_std > 0:
                    y_adapt = y_adapt + p.noise_std * self._randn(gen, n, st.mc_adapt)
                w = model.adapt_head(
                    lam[:, : st.mc_adapt], y_adapt, self.w0[s].expand(n, K), p.eta_w, p.inner_steps
                )
                pred = model.network_output(lam[:, st.mc_adapt :], w)
                per_task.append(model.half_mse(pred, y[:, st.mc_adapt :]))
            per_task = torch.cat(per_task).cpu().numpy()
            means.append(per_task.mean())
            errs.append(
                per_task.std(ddof=1) / math.sqrt(len(per_task)) if len(per_task) > 1 else np.nan
            )
        return np.array(means), np.array(errs)

    # --- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "digest": self.params.digest(),
            "settings": dataclasses.asdict(self.settings),
            "t": self.t,
            "J": self.J.cpu(),
            "w0": self.w0.cpu(),
            "alive": self.alive.cpu(),
            "alpha_diverged": self.alpha_diverged.copy(),
            "task_gens": [gen.get_state() for gen in self.task_gens],
            "mc_gens": [gen.get_state() for gen in self.mc_gens],
            "records": self.records,
            "wall_time": self.wall_time,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["digest"] != self.params.digest() or state["settings"] != dataclasses.asdict(
            self.settings
        ):
            raise ValueError("checkpoint belongs to other parameters or settings")
        self.t = state["t"]
        self.J = state["J"].to(self.device)
        self.w0 = state["w0"].to(self.device)
        self.alive = state["alive"].to(self.device)
        self.alpha_diverged = state["alpha_diverged"]
        for gen, gs in zip(self.task_gens, state["task_gens"], strict=True):
            gen.set_state(gs)
        for gen, gs in zip(self.mc_gens, state["mc_gens"], strict=True):
            gen.set_state(gs)
        self.records = state["records"]
        self.wall_time = state["wall_time"]

    def save_checkpoint(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --- driver --------------------------------------------------------------
    def run(self, checkpoint: str | os.PathLike | None = None, progress: bool | None = None):
        p, st = self.params, self.settings
        checkpoint = Path(checkpoint) if checkpoint else None
        if checkpoint is not None and checkpoint.exists():
            try:
                self.load_state_dict(torch.load(checkpoint, weights_only=False))
                log.info("resumed from %s at t = %d", checkpoint, self.t)
            except (ValueError, KeyError, RuntimeError) as exc:
                log.warning("ignoring checkpoint %s: %s", checkpoint, exc)
        record_at = [int(t) for t in p.record_steps()]
        pending = [t for t in record_at if t >= self.t and t not in self.records["t"]]
        total = p.total_steps
        chunk = st.draw_chunk if self.sampler == "projected" else 1
        every = st.checkpoint_every
        if every:
            every = max(chunk, (every + chunk - 1) // chunk * chunk)  # chunk boundaries only
        bar = _Progress(total, self.t, enabled=progress, label=p.name())
        started = time.perf_counter()
        while pending and pending[0] == self.t:
            self.record()
            pending.pop(0)
        while self.t < total and bool(self.alive.any()):
            n = min(chunk, total - self.t)
            draws = self._draw_chunk(n)
            for c in range(n):
                self.step(draws, c)
                if pending and pending[0] == self.t:
                    self.record()
                    pending.pop(0)
            self.check_divergence()
            bar.update(self.t)
            if checkpoint is not None and every and self.t % every == 0 and self.t < total:
                self.wall_time += time.perf_counter() - started
                started = time.perf_counter()
                self.save_checkpoint(checkpoint)
        while pending:  # every seed diverged: the remaining records are NaN
            self.t = pending[0]
            self.record()
            pending.pop(0)
        bar.close()
        self.wall_time += time.perf_counter() - started
        return self.dataset()

    def dataset(self) -> xr.Dataset:
        p = self.params
        rec = self.records
        t = np.array(rec["t"])
        alpha = t / p.N
        stack = lambda key: np.stack(rec[key], axis=1)  # noqa: E731  (seed, alpha, ...)
        R, Q, w0 = stack("R"), stack("Q"), stack("w0")
        from tsmeta.theory import eps_meta_closed_form

        T = np.broadcast_to(self.T[:, None], (len(self.seeds), len(t)) + self.T.shape[1:])
        eps = eps_meta_closed_form(R, Q, T, w0, p)
        K, M = p.K, p.M
        ds = xr.Dataset(
            {
                "R": (("seed", "alpha", "k", "n"), R),
                "Q": (("seed", "alpha", "k", "l"), Q),
                "w0": (("seed", "alpha", "k"), w0),
                "T": (("seed", "n", "m"), self.T),
                "eps_meta": (("seed", "alpha"), eps),
                "eps_meta_mc": (("seed", "alpha"), stack("eps_mc")),
                "eps_meta_mc_err": (("seed", "alpha"), stack("eps_mc_err")),
                "diverged": (("seed",), np.isfinite(self.alpha_diverged).astype(np.int8)),
                "alpha_diverged": (("seed",), self.alpha_diverged),
                "t": (("alpha",), t),
            },
            coords={
                "seed": self.seeds,
                "alpha": alpha,
                "k": np.arange(K),
                "l": np.arange(K),
                "n": np.arange(M),
                "m": np.arange(M),
            },
            attrs={
                **params_to_attrs(p),
                **{f"sim_{k}": v for k, v in dataclasses.asdict(self.settings).items()},
                **versions(),
                "stage": "simulate",
                "sampler_used": self.sampler,
                "device_used": str(self.device),
                "rng": RNG_DESCRIPTION,
                "wall_time_s": self.wall_time,
                "any_diverged": int(np.isfinite(self.alpha_diverged).any()),
            },
        )
        ds["t"].attrs.update(long_name="outer step (task count)", units="1")
        return describe(ds)


class _Progress:
    """tqdm on a terminal; on a log file, one line every 10 % so Snakemake logs stay readable."""

    def __init__(self, total: int, start: int, enabled: bool | None, label: str):
        self.total, self.label = total, label
        tty = sys.stderr.isatty()
        self.enabled = tty if enabled is None else enabled
        self.bar = None
        self.next_log = start + total // 10
        self.t0 = time.perf_counter()
        if self.enabled and tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="task", desc=label[:40])

    def update(self, t: int) -> None:
        if self.bar is not None:
            self.bar.update(t - self.bar.n)
        elif self.enabled and t >= self.next_log:
            rate = t / max(time.perf_counter() - self.t0, 1e-9)
            print(f"[{self.label}] {t}/{self.total} tasks ({rate:.0f}/s)", file=sys.stderr)
            self.next_log += max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def simulate(tasks: xr.Dataset, params: RunParams, settings: SimSettings | None = None, **kw):
    """Run the simulation of `params` from the state in `tasks`; returns the sim Dataset."""
    return Simulation(tasks, params, settings).run(**kw)
