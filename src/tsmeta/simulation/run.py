"""The simulation stage's driver: the loop over tasks, records, divergence, checkpoints, Dataset.

What happens on one task is the sampler's business (`simulation.samplers`); what is measured
at a record is `simulation.observables`; the random streams are `simulation.streams`.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from tsmeta.io import order_parameter_dataset, params_to_attrs, versions
from tsmeta.params import RunParams
from tsmeta.settings import SAMPLERS, SimSettings, resolve_sampler
from tsmeta.simulation import streams
from tsmeta.simulation.observables import eps_meta_monte_carlo, order_parameters

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(device)


class Simulation:
    """One run: all seeds of one parameter set, from the task-generation state."""

    def __init__(self, tasks: xr.Dataset, params: RunParams, settings: SimSettings | None = None):
        self.params = params
        self.settings = settings or SimSettings()
        self.sampler_name = resolve_sampler(self.settings.sampler, params)
        self.device = resolve_device(self.settings.device)
        self.dtype = getattr(torch, self.settings.dtype)
        self.seeds = [int(s) for s in tasks["seed"].values]
        sampler_cls = SAMPLERS[self.sampler_name].load()
        self.sampler = sampler_cls(tasks, params, self.settings, self.device, self.dtype)
        self.T = self.sampler.teacher_overlap()
        self.t = 0
        S = len(self.seeds)
        self.alive = torch.ones(S, dtype=torch.bool, device=self.device)
        self.alpha_diverged = np.full(S, np.nan)
        self.task_gens = streams.generators(self.seeds, streams.TASK_STREAM, self.device)
        self.mc_gens = streams.generators(self.seeds, streams.MEASUREMENT_STREAM, self.device)
        self.records = {"t": [], "R": [], "Q": [], "w0": [], "eps_mc": [], "eps_mc_err": []}
        self.wall_time = 0.0

    # --- tasks ---------------------------------------------------------------------------
    def draw(self, chunk: int) -> dict:
        """The task stream of the next `chunk` tasks, (S, chunk, ...) per draw."""
        p = self.params
        shapes = {"u": (chunk, p.M), **self.sampler.task_shapes(chunk)}
        draws = streams.draw_normals(self.task_gens, shapes, self.dtype, self.device)
        draws["u"] = p.u_mean + p.u_std * draws["u"]
        return draws

    def step(self, draws: dict, c: int) -> None:
        self.sampler.step(draws, c)
        self.t += 1

    def check_divergence(self) -> None:
        """Mark seeds whose state is non-finite or exploding; their records become NaN.

        Checked once per chunk of tasks; a diverged seed keeps running on NaN/inf values,
        which stay confined to its own slice of every batched operation.
        """
        q_max = self.sampler.norms().amax(-1)
        ok = torch.isfinite(q_max) & torch.isfinite(self.sampler.w0).all(-1)
        ok &= q_max < self.settings.divergence_threshold
        newly = (self.alive & ~ok).cpu().numpy()
        for s in np.flatnonzero(newly):
            self.alpha_diverged[s] = self.t / self.params.N
            log.warning("seed %d diverged at alpha = %.4g", self.seeds[s], self.alpha_diverged[s])
        self.alive &= ok

    # --- records -------------------------------------------------------------------------
    def record(self) -> None:
        self.check_divergence()
        dead = (~self.alive).cpu().numpy()
        self.records["t"].append(self.t)
        for name, value in order_parameters(self.sampler).items():
            value[dead] = np.nan
            self.records[name].append(value)
        index = len(self.records["t"]) - 1
        if index % self.settings.mc_every == 0 or self.t == self.params.total_steps:
            mean, err = self.eps_meta_monte_carlo()
        else:
            mean, err = np.full(len(self.seeds), np.nan), np.full(len(self.seeds), np.nan)
        mean[dead], err[dead] = np.nan, np.nan
        self.records["eps_mc"].append(mean)
        self.records["eps_mc_err"].append(err)

    def eps_meta_monte_carlo(self) -> tuple[np.ndarray, np.ndarray]:
        return eps_meta_monte_carlo(self.sampler, self.mc_gens, self.params, self.settings)

    # --- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "digest": self.params.digest(),
            "settings": self.settings.to_dict(),
            "t": self.t,
            "sampler": self.sampler.state_dict(),
            "alive": self.alive.cpu(),
            "alpha_diverged": self.alpha_diverged.copy(),
            "task_gens": [gen.get_state() for gen in self.task_gens],
            "mc_gens": [gen.get_state() for gen in self.mc_gens],
            "records": self.records,
            "wall_time": self.wall_time,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["digest"] != self.params.digest() or state["settings"] != self.settings.to_dict():
            raise ValueError("checkpoint belongs to other parameters or settings")
        self.t = state["t"]
        self.sampler.load_state_dict(state["sampler"])
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

    # --- driver --------------------------------------------------------------------------
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
        chunk = self.sampler.chunk
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
            draws = self.draw(n)
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
        from tsmeta.theory import eps_meta_closed_form

        p = self.params
        rec = self.records
        t = np.array(rec["t"])
        stack = lambda key: np.stack(rec[key], axis=1)  # noqa: E731  (seed, alpha, ...)
        R, Q, w0 = stack("R"), stack("Q"), stack("w0")
        T = np.broadcast_to(self.T[:, None], (len(self.seeds), len(t)) + self.T.shape[1:])
        values = {
            "R": R,
            "Q": Q,
            "w0": w0,
            "T": self.T,
            "eps_meta": eps_meta_closed_form(R, Q, T, w0, p),
            "eps_meta_mc": stack("eps_mc"),
            "eps_meta_mc_err": stack("eps_mc_err"),
            "diverged": np.isfinite(self.alpha_diverged).astype(np.int8),
            "alpha_diverged": self.alpha_diverged,
            "t": t,
        }
        draws = SAMPLERS[self.sampler_name].load().draws_description
        attrs = {
            **params_to_attrs(p),
            **{f"sim_{k}": v for k, v in self.settings.to_dict().items()},
            **versions(),
            "stage": "simulate",
            "sampler_used": self.sampler_name,
            "device_used": str(self.device),
            "rng": streams.RNG_DESCRIPTION.format(sampler=draws),
            "wall_time_s": self.wall_time,
            "any_diverged": int(np.isfinite(self.alpha_diverged).any()),
        }
        return order_parameter_dataset(values, self.seeds, p.K, p.M, alpha=t / p.N, attrs=attrs)


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
