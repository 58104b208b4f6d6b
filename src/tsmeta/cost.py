"""What a run costs, known before any job starts: peak memory and time (docs/simulation.md,
"Cost model").

Memory: the process's base (Python, torch, NumPy/xarray), the state, the draws of one chunk of
tasks and the larger of one task's temporaries and one Monte-Carlo batch, counted from the
shapes each sampler allocates. Time: seed-tasks over a tabulated rate per sampler (a fixed
cost per task, all seeds batched, plus a cost per random number of one seed-task), the
Monte-Carlo measurements and the theory stage. The rates were measured on the project's 2-core
machine, one CPU thread per job (`python benchmarks/project_config.py` measures them for a
config, on the machine at hand).

`memory_budget` (MB, per job) makes a run fit: fewer tasks per draw chunk and per
Monte-Carlo batch; a run that does not fit even with one of each is refused, naming the
estimate and a sampler that would fit. `max_runtime` (minutes, per job) splits a long run into
a chain of segments that resume from one another's checkpoint.

Torch-free, like `tsmeta.settings`: the Snakefile and `tsmeta validate` use it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tsmeta.algorithms import algorithm
from tsmeta.params import RunParams
from tsmeta.settings import SAMPLERS, SimSettings, resolve_kernel, resolve_sampler

MB = 2**20
FLOAT64, FLOAT32 = 8, 4
# resident size of a simulate job before any tensor of the run: 390 MB measured (max RSS of a
# tiny run, Python 3.11, torch 2.13 CPU), rounded up
BASE_BYTES = 420 * MB
# default memory_budget: this fraction of the machine's memory (where no budget is set)
MEMORY_FRACTION = 0.5
# a job asks the scheduler for this multiple of its estimates (its memory and its time)
MEMORY_MARGIN, TIME_MARGIN = 1.25, 2.0
# minutes a job needs besides its computation (start, imports, writing its files)
JOB_OVERHEAD_MIN = 2


@dataclass(frozen=True)
class Rate:
    """Seconds of one task of a run (every seed batched): per_task + seeds x per_number x
    random numbers of one seed-task; `second_order` multiplies the per-number part."""

    per_task: float
    per_number: float
    second_order: float = 1.0


# Measured 2026-12-07 on the project's 2-core machine in CPU seconds of one thread (the wall
# time of that shared machine swung by 3x between rounds; a job alone on a core takes its CPU
# time): gram 320 us per task at 1 seed, 520 at 16 and 1079 at 64 (P = V = 50, K = M = 3),
# 2123 at P = V = 500 (16 seeds), ANIL 1.7x the per-number part; projected 369 us (N = 100)
# and 672 (N = 2000) at P = V = 50, 994 at P = V = 500, 4 seeds; dense 2084 us
# (N = P = V = 200) and 13172 (N = P = V = 500), 4 seeds, MAML 1.67x.
# The fused Gram kernel (`simulation.kernel`), same measurement: 11.5 us per seed-task at
# P = V = 50 and 230 at P = V = 1000 (16 seeds), next to eager's 30 and 218; per task it is a
# numba call and the chunk's teacher coordinates.
RATES = {
    "gram": Rate(per_task=300e-6, per_number=20e-9, second_order=1.7),
    "gram-fused": Rate(per_task=20e-6, per_number=19e-9),
    "projected": Rate(per_task=320e-6, per_number=13.5e-9, second_order=1.7),
    "dense": Rate(per_task=100e-6, per_number=6.6e-9, second_order=1.67),
}
# Monte Carlo, per example of one seed: 9 ns per input coordinate (the draws and the fields)
# plus 60 ns (the activations): gram 0.26 s for 50 tasks x 22000 examples of 2 seeds (D = 6),
# dense at N = 200 3.9 s (same CPU-time measurement)
MC_PER_COORDINATE, MC_PER_EXAMPLE = 9e-9, 60e-9
# theory stage, tabulated: seconds per seed and unit of alpha (RK45), plus a start; measured
# 6.8 s for 2 seeds to alpha = 500 (K = M = 2), taken with a factor 2 for larger K
THEORY_PER_SEED_ALPHA, THEORY_START = 0.004, 5.0


def machine_memory_mb() -> float:
    """Physical memory of this machine in MB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB


def default_memory_budget_mb() -> int:
    return int(MEMORY_FRACTION * machine_memory_mb())


# --- shapes ------------------------------------------------------------------------------


def frame_dim(params: RunParams) -> int:
    """D of the Gram sampler: K + M, plus the directions of dB_t off the frame (gamma < 1)."""
    d = params.K + params.M
    return d + (min(params.M, params.N - d) if params.gamma < 1 else 0)


def input_dim(sampler: str, params: RunParams) -> int:
    """Coordinates of one input as the sampler draws it (fields, or x itself)."""
    if sampler == "dense":
        return params.N
    return frame_dim(params) if sampler == "gram" else params.K + params.M


def numbers_per_task(sampler: str, params: RunParams) -> int:
    """Random numbers one task draws for one seed (its draw shapes, the small ones summed)."""
    p = params
    n, d = p.P + p.V, p.K + p.M
    small = p.M + (n if p.noise_std > 0 else 0)
    if sampler == "gram":
        # fields, the Wishart's Bartlett factor; dB_t on and off the frame; FO-MAML's inner
        # step directions
        teacher = p.M * d + p.M + p.M * p.M if p.gamma < 1 else 0
        inner = p.V * p.K + p.K + p.K * p.K if algorithm(p.algorithm).adapts_J else 0
        return n * frame_dim(p) + p.K * p.K + p.K + teacher + inner + small
    teacher = p.M * p.N if p.gamma < 1 else 0
    if sampler == "projected":
        return n * d + p.K * p.N + teacher + small
    return n * p.N + teacher + small


def mc_examples(params: RunParams, settings: SimSettings) -> tuple[int, int]:
    """(adaptation examples, all examples) of one Monte-Carlo task."""
    n_adapt = max(settings.mc_adapt, params.P)
    return n_adapt, n_adapt + settings.mc_test


def default_mc_batch(sampler: str, params: RunParams, settings: SimSettings) -> int:
    """Monte-Carlo tasks measured at once where `simulation.mc_batch` is 0: a few million
    coordinates per batch (the samplers' long-standing choice)."""
    _, n_ex = mc_examples(params, settings)
    if sampler == "dense":
        return max(1, 2_000_000 // (n_ex * params.N))
    if sampler == "gram":
        return max(1, min(settings.mc_tasks, 4_000_000 // (n_ex * frame_dim(params))))
    return settings.mc_tasks


def mc_batch(sampler: str, params: RunParams, settings: SimSettings) -> int:
    chosen = settings.mc_batch or default_mc_batch(sampler, params, settings)
    return min(chosen, settings.mc_tasks)


def draw_chunk(sampler: str, settings: SimSettings) -> int:
    """Tasks whose draws are made at once (the dense sampler draws one task at a time)."""
    return 1 if sampler == "dense" else settings.draw_chunk


# --- memory ------------------------------------------------------------------------------


def memory_parts(
    sampler: str, params: RunParams, settings: SimSettings, chunk: int, batch: int
) -> dict[str, float]:
    """Bytes of the largest allocations of a simulate job, by what they hold."""
    p, S = params, params.seeds
    n, d = p.P + p.V, p.K + p.M
    weights = sampler != "gram"
    # weights J, B (and the tasks file's copy of them); the Gram state is (d x d) per seed
    state = 2 * S * d * p.N * FLOAT64 if weights else S * d * d * FLOAT64
    per_task = numbers_per_task(sampler, p)
    # a chunk of draws in float64, plus one seed's draw in float32 before its cast
    draws = S * chunk * per_task * FLOAT64 + chunk * per_task * FLOAT32
    # one task's temporaries: fields and their activations; weight samplers: (K, N) products
    step = 8 * S * n * d * FLOAT64
    if weights:
        step += 6 * S * d * p.N * FLOAT64
    if sampler == "dense" and algorithm(p.algorithm).adapts_J:
        step += 4 * S * n * p.N * FLOAT64  # autograd keeps the inputs' products
    # Monte Carlo, one batch of one seed: inputs drawn (float32, then float64), the fields,
    # activations of the adaptation examples; weight samplers build (d, N) per task
    n_adapt, n_ex = mc_examples(p, settings)
    coords = input_dim(sampler, p)
    mc = batch * (n_ex * (coords * (FLOAT32 + FLOAT64) + 2 * d * FLOAT64)
                  + 3 * n_adapt * p.K * FLOAT64)  # fmt: skip
    if weights:
        mc += batch * (d + (p.M if p.gamma < 1 else 0)) * p.N * (FLOAT32 + FLOAT64)
    records = S * (p.n_records + 1) * (d * d + 8) * FLOAT64
    return {"base": BASE_BYTES, "state": state + records, "draws": draws, "step": step, "mc": mc}


def peak_bytes(parts: dict[str, float]) -> float:
    """A chunk's draws live while a task is applied and while a record measures."""
    return parts["base"] + parts["state"] + parts["draws"] + max(parts["step"], parts["mc"])


# --- time --------------------------------------------------------------------------------


def simulation_seconds(sampler: str, params: RunParams, settings: SimSettings) -> float:
    """Tasks at the tabulated rate, plus every Monte-Carlo measurement."""
    p = params
    fused = sampler == "gram" and resolve_kernel(p, settings) == "fused"
    rate = RATES["gram-fused" if fused else sampler]
    order = rate.second_order if algorithm(p.algorithm).second_order else 1.0
    task = rate.per_task + p.seeds * order * rate.per_number * numbers_per_task(sampler, p)
    _, n_ex = mc_examples(p, settings)
    one_mc = (
        p.seeds
        * settings.mc_tasks
        * n_ex
        * (MC_PER_COORDINATE * input_dim(sampler, p) + MC_PER_EXAMPLE)
    )
    return p.total_steps * task + n_monte_carlo(p, settings) * one_mc


def n_monte_carlo(params: RunParams, settings: SimSettings) -> int:
    """Records that take a Monte-Carlo measurement (every mc_every-th and the last)."""
    return len(range(0, len(params.record_steps()), settings.mc_every)) + 1


def theory_seconds(params: RunParams) -> float:
    order = 3.0 if algorithm(params.algorithm).second_order else 1.0
    return THEORY_START + order * THEORY_PER_SEED_ALPHA * params.seeds * params.alpha_final


# --- one run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCost:
    """The estimate of one run and what its jobs ask the scheduler for."""

    run: str
    sampler: str
    seed_tasks: int
    peak: float  # bytes
    parts: dict
    simulate_s: float
    theory_s: float
    draw_chunk: int
    mc_batch: int
    stops: tuple = ()  # tasks at which the segments before the last end (max_runtime)
    threads: int = 1  # more threads do not pay at the per-task sizes here (small operations)

    @property
    def segments(self) -> int:
        return len(self.stops) + 1

    @property
    def mem_mb(self) -> int:
        """Memory a simulate job asks for: the estimate with a margin."""
        return math.ceil(MEMORY_MARGIN * self.peak / MB)

    @property
    def theory_mem_mb(self) -> int:
        return math.ceil(MEMORY_MARGIN * (BASE_BYTES + self.parts["state"]) / MB)

    @property
    def runtime_min(self) -> int:
        """Minutes one simulate job (one segment) asks for."""
        per_segment = self.simulate_s / self.segments
        return math.ceil(TIME_MARGIN * per_segment / 60) + JOB_OVERHEAD_MIN

    def stop_of(self, segment: int) -> int:
        """The task at which segment `segment` (1, 2, ...; not the last) stops."""
        return self.stops[segment - 1]

    @property
    def theory_runtime_min(self) -> int:
        return math.ceil(TIME_MARGIN * self.theory_s / 60) + JOB_OVERHEAD_MIN


def segments_for(simulate_s: float, max_runtime: float | None) -> int:
    """Jobs a run is split into so that each asks for at most max_runtime minutes."""
    if not max_runtime:
        return 1
    usable = max_runtime - JOB_OVERHEAD_MIN
    if usable <= 0:
        usable = max_runtime / 2
    return max(1, math.ceil(TIME_MARGIN * simulate_s / 60 / usable))


def segment_stops(total: int, chunk: int, segments: int) -> tuple[int, ...]:
    """Tasks at which the first segments - 1 jobs of a run stop: equal shares, rounded up to
    the draw chunk (a segment ends where the unsplit run would draw its next chunk, so the
    chain draws exactly the same numbers)."""
    stops = []
    for k in range(1, segments):
        stop = math.ceil(total * k / segments / chunk) * chunk
        if stop < total and (not stops or stop > stops[-1]):
            stops.append(stop)
    return tuple(stops)


def fit_chunks(
    sampler: str, params: RunParams, settings: SimSettings, budget: float
) -> tuple[int, int] | None:
    """The largest (draw chunk, Monte-Carlo batch), at most the settings' own, whose peak
    fits `budget` bytes; None where even (1, 1) does not."""
    chunk, batch = draw_chunk(sampler, settings), mc_batch(sampler, params, settings)

    def fits(c, b):
        return peak_bytes(memory_parts(sampler, params, settings, c, b)) <= budget

    while not fits(chunk, batch):
        if chunk == 1 and batch == 1:
            return None
        # halve whichever of the two holds more memory
        parts = memory_parts(sampler, params, settings, chunk, batch)
        if batch > 1 and (parts["mc"] >= parts["draws"] or chunk == 1):
            batch = max(1, batch // 2)
        else:
            chunk = max(1, chunk // 2)
    return chunk, batch


def estimate(name: str, params: RunParams, settings: SimSettings, resources: dict) -> RunCost:
    """The cost of run `name` under the config's `memory_budget` and `max_runtime`; a
    ValueError naming the estimate and a sampler that fits where it cannot fit."""
    sampler = resolve_sampler(settings.sampler, params)
    budget_mb = resources.get("memory_budget") or default_memory_budget_mb()
    fitted = fit_chunks(sampler, params, settings, budget_mb * MB)
    if fitted is None:
        raise ValueError(_refusal(name, sampler, params, settings, budget_mb))
    chunk, batch = fitted
    parts = memory_parts(sampler, params, settings, chunk, batch)
    simulate_s = simulation_seconds(sampler, params, settings)
    return RunCost(
        run=name,
        sampler=sampler,
        seed_tasks=params.seeds * params.total_steps,
        peak=peak_bytes(parts),
        parts=parts,
        simulate_s=simulate_s,
        theory_s=theory_seconds(params),
        draw_chunk=chunk,
        mc_batch=batch,
        stops=segment_stops(
            params.total_steps,
            chunk,
            segments_for(simulate_s, resources.get("max_runtime")),
        ),
    )


def _refusal(name, sampler, params, settings, budget_mb) -> str:
    smallest = memory_parts(sampler, params, settings, 1, 1)
    biggest = max(("draws", "step", "mc"), key=smallest.get)
    what = {"draws": "one task's draws", "step": "one task's update",
            "mc": "one Monte-Carlo task"}[biggest]  # fmt: skip
    need = peak_bytes(smallest) / MB
    text = (
        f"config key 'memory_budget': run {name} needs about {need:.0f} MB with sampler "
        f"{sampler!r} even with one task per draw chunk and per Monte-Carlo batch "
        f"({what}: {smallest[biggest] / MB:.0f} MB), over the budget of {budget_mb:.0f} MB"
    )
    fitting = []
    for other in SAMPLERS:
        if other == sampler or SAMPLERS[other].unsupported(params) is not None:
            continue
        other_need = peak_bytes(memory_parts(other, params, settings, 1, 1)) / MB
        if other_need <= budget_mb:
            fitting.append(f"{other!r} ({other_need:.0f} MB)")
    if fitting:
        text += f"; fits with simulation.sampler: {' or '.join(fitting)}"
    text += f"; or raise memory_budget to at least {math.ceil(need)}"
    if biggest == "mc":
        text += " or lower simulation.mc_adapt / mc_test"
    return text


def plan_costs(runs: dict, sim_settings: dict, resources: dict) -> dict[str, RunCost]:
    """The cost of every run of a plan (ValueError on the first that cannot fit)."""
    return {
        name: estimate(name, params, SimSettings.from_dict(sim_settings[name]), resources)
        for name, params in runs.items()
    }


def cost_table(costs: dict[str, RunCost], experiments: dict | None = None) -> str:
    """The per-run estimate table of `tsmeta plan`, then each experiment's sum and the total."""
    head = (f"{'run':<60} {'sampler':>9} {'seed-tasks':>11} {'peak MB':>8} {'mem_mb':>7} "
            f"{'sim [h]':>8} {'theory [s]':>10} {'chunk':>6} {'mc':>4} {'jobs':>4}")  # fmt: skip
    lines = [head]
    for c in sorted(costs.values(), key=lambda c: -c.simulate_s):
        lines.append(
            f"{c.run[:60]:<60} {c.sampler:>9} {c.seed_tasks:>11.3g} {c.peak / MB:>8.0f} "
            f"{c.mem_mb:>7} {c.simulate_s / 3600:>8.3f} {c.theory_s:>10.0f} {c.draw_chunk:>6} "
            f"{c.mc_batch:>4} {c.segments:>4}"
        )
    if experiments:
        lines += ["", f"{'experiment':<24} {'runs':>5} {'simulation [core-h]':>20} "
                      f"{'theory [core-h]':>16} {'longest run [h]':>16}"]  # fmt: skip
        for exp_name, run_names in experiments.items():
            own = [costs[r] for r in run_names]
            sim_h = sum(c.simulate_s for c in own) / 3600
            theory_h = sum(c.theory_s for c in own) / 3600
            longest = max((c.simulate_s for c in own), default=0.0) / 3600
            lines.append(f"{exp_name:<24} {len(own):>5} {sim_h:>20.2f} {theory_h:>16.2f} "
                         f"{longest:>16.2f}")  # fmt: skip
    sim_h = sum(c.simulate_s for c in costs.values()) / 3600
    theory_h = sum(c.theory_s for c in costs.values()) / 3600
    longest = max((c.simulate_s for c in costs.values()), default=0.0) / 3600
    lines.append(
        f"\ntotal: {len(costs)} runs, simulation {sim_h:.2f} core-hours, theory {theory_h:.2f} "
        f"core-hours (runs only; theory sweeps not included), longest run {longest:.2f} h "
        "(an estimate from tabulated rates, one thread per job)"
    )
    return "\n".join(lines)
