"""The simulation stage's driver: the loop over tasks, records, divergence, checkpoints, Dataset.

What happens on one task is the sampler's business (`simulation.samplers`); what is measured
at a record is `simulation.observables`; the random streams are `simulation.streams`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from tsmeta.io import atomic_output, order_parameter_dataset, params_to_attrs, set_aside, versions
from tsmeta.params import RunParams
from tsmeta.progress import Progress
from tsmeta.settings import SAMPLERS, SimSettings, attrs_of, resolve_sampler
from tsmeta.simulation import streams
from tsmeta.simulation.observables import monte_carlo_errors, order_parameters
from tsmeta.simulation.samplers import prepare_compile

log = logging.getLogger(__name__)
# Monte-Carlo observables (`observables.monte_carlo_errors`), each with its standard error
MC_OBSERVABLES = ("eps_meta_mc", "eps_meta_p_mc")
MC_RECORDS = (*MC_OBSERVABLES, *(name + "_err" for name in MC_OBSERVABLES))
# Where checkpoints are on (checkpoint_every > 0), one is also written at the first draw-chunk
# boundary this long after the last: a slow run (dense MAML at paper scale: 8 tasks per second,
# 40 min per 20000 tasks) loses at most this much when its job is killed. Resuming is exact
# at any chunk boundary, so the numbers do not depend on where checkpoints fall.
CHECKPOINT_WALL_S = 600.0


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
        if self.settings.compile:
            # fused kernels for one task's update: at small P + V eager PyTorch spends most of
            # a task in the overhead of its ~40 small operations
            prepare_compile()
            self.sampler.advance = torch.compile(self.sampler.advance, dynamic=False)
        self.T = self.sampler.teacher_overlap()
        self.t = 0
        S = len(self.seeds)
        self.alive = torch.ones(S, dtype=torch.bool, device=self.device)
        self.alpha_diverged = np.full(S, np.nan)
        self.task_gens = streams.generators(self.seeds, streams.TASK_STREAM, self.device)
        self.mc_gens = streams.generators(self.seeds, streams.MEASUREMENT_STREAM, self.device)
        self.records = {name: [] for name in ("t", "R", "Q", "w0", *MC_RECORDS)}
        self.wall_time = 0.0

    # --- tasks ---------------------------------------------------------------------------
    def draw(self, chunk: int) -> dict:
        """The task stream of the next `chunk` tasks, (S, chunk, ...) per draw."""
        p = self.params
        shapes = {"u": (chunk, p.M), **self.sampler.task_shapes(chunk)}
        sampler = self.sampler
        draws = streams.draw_normals(
            self.task_gens, shapes, sampler.dtype, self.device, sampler.normals
        )
        draws["u"] = p.u_mean + p.u_std * draws["u"]
        return sampler.prepare_chunk(draws)

    def step(self, draws: dict, c: int) -> None:
        self.sampler.step(draws, c)
        self.t += 1

    def steps(self, draws: dict, start: int, stop: int) -> None:
        """Tasks start..stop of the chunk `draws`, in one call of the sampler."""
        self.sampler.steps(draws, start, stop)
        self.t += stop - start

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
            measured = self.monte_carlo_errors()
        else:
            nan = np.full(len(self.seeds), np.nan)
            measured = {name: (nan, nan) for name in MC_OBSERVABLES}
        for name, (mean, err) in measured.items():
            mean, err = mean.copy(), err.copy()
            mean[dead], err[dead] = np.nan, np.nan
            self.records[name].append(mean)
            self.records[name + "_err"].append(err)

    def monte_carlo_errors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{eps_meta_mc, eps_meta_p_mc: (mean, standard error)} per seed, now."""
        return monte_carlo_errors(self.sampler, self.mc_gens, self.params, self.settings)

    def eps_meta_monte_carlo(self) -> tuple[np.ndarray, np.ndarray]:
        return self.monte_carlo_errors()["eps_meta_mc"]

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
        missing = sorted(set(self.state_dict()) - set(state)) if isinstance(state, dict) else "all"
        if missing:
            raise ValueError(f"not a checkpoint of this version (missing {missing})")
        if state["digest"] != self.params.digest() or state["settings"] != self.settings.to_dict():
            raise ValueError("checkpoint belongs to other parameters or settings")
        if set(state["records"]) != set(self.records):
            raise ValueError("checkpoint records other observables (an older version)")
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
        with atomic_output(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def resume(self, checkpoint: Path) -> None:
        """Continue from `checkpoint` if it is usable; an unusable one (truncated, another
        version, other parameters) is renamed to <name>.unusable, named in a warning, and
        the run starts from t = 0."""
        try:
            state = torch.load(checkpoint, weights_only=False)
            self.load_state_dict(state)  # checks everything before it changes anything
        except Exception as exc:  # torch raises OSError, RuntimeError, EOFError, ...
            moved = set_aside(checkpoint, ".unusable")
            log.warning(
                "checkpoint %s is unusable (%s: %s); moved aside to %s; starting from t = 0",
                checkpoint, type(exc).__name__, exc, moved,
            )  # fmt: skip
            return
        log.info("resumed from %s at t = %d", checkpoint, self.t)

    # --- driver --------------------------------------------------------------------------
    def run(
        self,
        checkpoint: str | os.PathLike | None = None,
        progress: bool | None = None,
        resume_from: str | os.PathLike | None = None,
        stop_at: int | None = None,
    ):
        """The sim Dataset; resumes from `checkpoint` if it exists, else from `resume_from`
        (the previous segment of a run split into jobs). With `stop_at` (a multiple of the
        draw chunk, below the run's tasks) it stops there, saves the state to `checkpoint`
        and returns None: a segment."""
        p, st = self.params, self.settings
        checkpoint = Path(checkpoint) if checkpoint else None
        start = next((Path(f) for f in (checkpoint, resume_from) if f and Path(f).exists()), None)
        if start is not None:
            self.resume(start)
        record_at = [int(t) for t in p.record_steps()]
        pending = [t for t in record_at if t >= self.t and t not in self.records["t"]]
        total = p.total_steps
        end = total if stop_at is None else min(stop_at, total)
        chunk = self.sampler.chunk
        if end % chunk and end < total:
            raise ValueError(f"stop_at={stop_at} is not a multiple of the draw chunk {chunk}")
        every = st.checkpoint_every
        if every:
            every = max(chunk, (every + chunk - 1) // chunk * chunk)  # chunk boundaries only
        bar = Progress(total, f"simulate {p.name()}", unit="tasks", start=self.t,
                       enabled=progress is not False)  # fmt: skip
        started = last_saved = time.perf_counter()
        while pending and pending[0] == self.t:
            self.record()
            pending.pop(0)
        while self.t < end and bool(self.alive.any()):
            n = min(chunk, total - self.t)
            draws = self.draw(n)
            done = 0
            while done < n:  # stretches of tasks between records
                stop = n if not pending else min(n, done + pending[0] - self.t)
                self.steps(draws, done, stop)
                done = stop
                if pending and pending[0] == self.t:
                    self.record()
                    pending.pop(0)
            del draws  # freed before the next chunk is drawn: one chunk in memory, not two
            self.check_divergence()
            bar.update(self.t, alpha=self.t / p.N, diverged_seeds=int((~self.alive).sum()))
            due = bool(every) and (
                self.t % every == 0 or time.perf_counter() - last_saved > CHECKPOINT_WALL_S
            )
            if checkpoint is not None and due and self.t < total:
                self.wall_time += time.perf_counter() - started
                started = last_saved = time.perf_counter()
                self.save_checkpoint(checkpoint)
        if end < total:  # a segment: the next job resumes from its state
            bar.close(alpha=self.t / p.N, diverged_seeds=int((~self.alive).sum()))
            self.wall_time += time.perf_counter() - started
            self.save_checkpoint(checkpoint)
            return None
        while pending:  # every seed diverged: the remaining records are NaN
            self.t = pending[0]
            self.record()
            pending.pop(0)
        bar.close(alpha=self.t / p.N, diverged_seeds=int((~self.alive).sum()))
        self.wall_time += time.perf_counter() - started
        return self.dataset()

    def dataset(self) -> xr.Dataset:
        from tsmeta.theory import eps_meta_closed_form, eps_meta_p_closed_form

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
            "eps_meta_p": eps_meta_p_closed_form(R, Q, T, w0, p),
            **{name: stack(name) for name in MC_RECORDS},
            "diverged": np.isfinite(self.alpha_diverged).astype(np.int8),
            "alpha_diverged": self.alpha_diverged,
            "t": t,
        }
        draws = SAMPLERS[self.sampler_name].load().draws_description
        attrs = {
            **params_to_attrs(p),
            **attrs_of(self.settings, "sim_"),
            **versions(),
            "stage": "simulate",
            "sampler_used": self.sampler_name,
            "kernel_used": "fused" if getattr(self.sampler, "fused", None) else "eager",
            "device_used": str(self.device),
            "rng": streams.RNG_DESCRIPTION.format(sampler=draws, normals=self.settings.normals),
            "wall_time_s": self.wall_time,
            "any_diverged": int(np.isfinite(self.alpha_diverged).any()),
        }
        return order_parameter_dataset(values, self.seeds, p.K, p.M, alpha=t / p.N, attrs=attrs)


def simulate(tasks: xr.Dataset, params: RunParams, settings: SimSettings | None = None, **kw):
    """Run the simulation of `params` from the state in `tasks`; returns the sim Dataset."""
    return Simulation(tasks, params, settings).run(**kw)
