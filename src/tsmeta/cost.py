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

from tsmeta.activations import activation
from tsmeta.algorithms import algorithm
from tsmeta.params import RunParams, searches, sweep_points
from tsmeta.settings import (
    SAMPLERS,
    SDE_STEP,
    SimSettings,
    TheorySettings,
    lna_substeps,
    resolve_kernel,
    resolve_sampler,
)

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
# minutes asked by the jobs whose work is not estimated (reading and writing files)
SHORT_JOB_MIN = 30
# torch's CPU threads of a simulation (a job, `tsmeta simulate`, `tsmeta.simulate`): one. Its
# operations are small (a task's draws and fields), so more threads do not pay, and where the
# cores are busy they wait on each other: the quick-start notebook's run took 5.7 s with 1 or 2
# threads on the idle 2-core machine, 70 s with 2 beside two other jobs.
SIMULATION_THREADS = 1


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
# (N = P = V = 200) and 13172 (N = P = V = 500), 4 seeds. MAML (dense, 4 seeds), measured
# 2026-12-07: 4.4 ms per task at N = P = V = 200, 25.7 at 500, 90.4 at N = 500, P = 2000,
# V = 500 (its second-order part grows with P more than with V): 3.0x the per-number part
# keeps the largest within 0.9 and overestimates the others (0.65-0.7).
# The fused Gram kernel (`simulation.kernel`), same measurement: 11.5 us per seed-task at
# P = V = 50 and 230 at P = V = 1000 (16 seeds), next to eager's 30 and 218; per task it is a
# numba call and the chunk's teacher coordinates.
RATES = {
    "gram": Rate(per_task=300e-6, per_number=20e-9, second_order=1.7),
    "gram-fused": Rate(per_task=20e-6, per_number=19e-9),
    "projected": Rate(per_task=320e-6, per_number=13.5e-9, second_order=1.7),
    "dense": Rate(per_task=100e-6, per_number=6.6e-9, second_order=3.0),
}
# Monte Carlo, per example of one seed: 9 ns per input coordinate (the draws and the fields)
# plus 60 ns (the activations): gram 0.26 s for 50 tasks x 22000 examples of 2 seeds (D = 6),
# dense at N = 200 3.9 s (same CPU-time measurement)
MC_PER_COORDINATE, MC_PER_EXAMPLE = 9e-9, 60e-9
# Theory stages, CPU seconds at K = M = 3, erf, a first-order ODE, measured 2026-12-07 on the
# project's 2-core machine (`python benchmarks/cost_model.py` prints estimate / measured):
# the ODE (RK45, every seed one batch) per seed and unit of alpha, with a start; the linear
# noise per seed and substep (`settings.lna_substeps`: a Jacobian of r + 1 drifts, the
# diffusion, a 2r x 2r exponential); Euler-Maruyama per seed, realisation and step; a sweep
# member (BDF, systems of theory_sweep.batch) per unit of alpha.
THEORY_START = 2.0
ODE_PER_SEED_ALPHA = 2.5e-3  # 1.9 s for 8 seeds to alpha = 60 (start included)
LNA_PER_SEED_SUBSTEP = 6e-3  # 5.7 ms (8 seeds, 82 substeps)
SDE_PER_SEED_STEP = 4e-4  # 3.9 ms per seed-realisation and unit of alpha at h = 0.1
SWEEP_PER_MEMBER_ALPHA = 4e-4  # 0.16 s per member to alpha = 450 (16 members)
# ANIL's and MAML's second-order ODE: x 6 (ODE; 23 ms per seed-alpha), x 4 (linear noise,
# 23 ms per substep), x 10 (BDF sweeps, 1.6 s per member); relu with an explicit method: x 60
# (160 ms per seed-alpha for FO-ANIL, 1.0 s for ANIL; its kinks hold RK45's step down)
SECOND_ORDER = {"ode": 6.0, "lna": 4.0, "sweep": 10.0}
EXPLICIT_RELU = 60.0
STIFF_METHODS = ("BDF", "Radau", "LSODA")  # relu's factor is for the adaptive explicit ones


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


def ode_scale(K: int, M: int) -> float:
    """A drift evaluation at (K, M) against K = M = 3: the Gaussian integrals of K + M fields
    (measured 7.7x at K = 8, 4.2x at K = 6 in a sweep)."""
    return ((K + M) / 6) ** 3.5


def independent_coordinates(K: int, M: int) -> int:
    """r: R, the upper triangle of Q and w0 (the coordinates of `theory.lna`)."""
    return K * M + K * (K + 1) // 2 + K


def noise_scale(K: int, M: int) -> float:
    """A linear-noise substep or an Euler-Maruyama step at (K, M) against K = M = 3: r + 1
    drifts for a Jacobian of the r independent coordinates, each ~(K + M)^2.5 (measured 2.6x
    at K = 4, 14x at K = 6, 64x at K = 8)."""
    r = independent_coordinates(K, M)
    return (r / 18) ** 2 * ((K + M) / 6) ** 2.5


def _order(params: RunParams, part: str) -> float:
    return SECOND_ORDER[part] if algorithm(params.algorithm).second_order else 1.0


def theory_seconds(params: RunParams, settings: TheorySettings) -> float:
    """CPU seconds of the theory stage of a run: its ODE and the linear-noise bands (where the
    activation has them), or its SDE paths."""
    p, K, M = params, params.K, params.M
    if settings.kind == "sde":
        steps = p.alpha_final / (settings.fixed_step or SDE_STEP)
        per_step = SDE_PER_SEED_STEP * noise_scale(K, M) * _order(p, "lna")
        return THEORY_START + p.seeds * settings.realisations * steps * per_step
    ode = ODE_PER_SEED_ALPHA * ode_scale(K, M) * _order(p, "ode")
    if p.activation == "relu" and settings.method not in STIFF_METHODS:
        ode *= EXPLICIT_RELU
    seconds = THEORY_START + p.seeds * p.alpha_final * ode
    if activation(p.activation).diffusion:
        substeps = sum(lna_substeps(p.alphas()))
        seconds += p.seeds * substeps * LNA_PER_SEED_SUBSTEP * noise_scale(K, M) * _order(p, "lna")
    return seconds


def sweep_seconds(sweep: dict) -> float:
    """CPU seconds of a theory sweep (`theory.sweeps`): every member of its searches."""
    base = dict(sweep.get("base") or {})
    seconds = THEORY_START
    for _, _, point in sweep_points(searches(sweep)):
        p = RunParams.from_dict({**base, **point})
        seconds += p.alpha_final * SWEEP_PER_MEMBER_ALPHA * ode_scale(p.K, p.M) * _order(p, "sweep")
    return seconds


def runtime_min(seconds: float) -> int:
    """Minutes a job of `seconds` estimated CPU time asks for: the margin and the overhead."""
    return math.ceil(TIME_MARGIN * seconds / 60) + JOB_OVERHEAD_MIN


def short_job_runtime(max_runtime: float | None) -> int:
    """Minutes a job without an estimate of its own asks for (tasks, compare, figure data,
    figure, claims: seconds of work at paper scale), never more than max_runtime."""
    return min(SHORT_JOB_MIN, int(max_runtime)) if max_runtime else SHORT_JOB_MIN


@dataclass(frozen=True)
class TheoryCost:
    """The estimate of one theory job (a run's theory or variant, or a sweep)."""

    seconds: float
    peak: float  # bytes
    max_runtime: float | None = None  # minutes (config key), the most a job may ask for

    @property
    def runtime_min(self) -> int:
        asked = runtime_min(self.seconds)
        return min(asked, int(self.max_runtime)) if self.max_runtime else asked

    @property
    def mem_mb(self) -> int:
        return math.ceil(MEMORY_MARGIN * self.peak / MB)


def theory_cost(
    params: RunParams, settings: TheorySettings, max_runtime: float | None = None
) -> TheoryCost:
    """A run's theory job: its time, and its memory (the records of every seed, and the
    linear-noise covariances of r x r per record)."""
    K, M = params.K, params.M
    r = independent_coordinates(K, M)
    records = params.n_records + 1
    realisations = settings.realisations if settings.kind == "sde" else 1
    state = params.seeds * realisations * records * (K * M + K * K + K + 8) * FLOAT64
    lna = params.seeds * records * r * r * FLOAT64
    return TheoryCost(theory_seconds(params, settings), BASE_BYTES + state + 3 * lna, max_runtime)


def sweep_cost(sweep: dict, max_runtime: float | None = None) -> TheoryCost:
    """A sweep's job: its time; its memory is the process's base (the members' records are
    small)."""
    return TheoryCost(sweep_seconds(sweep), BASE_BYTES, max_runtime)


def theory_refusal(what: str, cost: TheoryCost) -> str | None:
    """Why a theory job cannot meet `max_runtime` (it is one job, never split), or None."""
    if not cost.max_runtime or cost.seconds / 60 + JOB_OVERHEAD_MIN <= cost.max_runtime:
        return None
    need = math.ceil(cost.seconds / 60) + JOB_OVERHEAD_MIN
    return (
        f"config key 'max_runtime': {what} is estimated at {cost.seconds / 60:.0f} minutes, "
        f"over max_runtime = {cost.max_runtime:g}; a theory job is not split into segments: "
        f"raise max_runtime to at least {need}, or make the job smaller (fewer seeds, "
        "records or sweep members)"
    )


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
    draw_chunk: int
    mc_batch: int
    stops: tuple = ()  # tasks at which the segments before the last end (max_runtime)
    threads: int = SIMULATION_THREADS

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
        return runtime_min(self.simulate_s / self.segments)

    def stop_of(self, segment: int) -> int:
        """The task at which segment `segment` (1, 2, ...; not the last) stops."""
        return self.stops[segment - 1]


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


def cost_table(plan) -> str:
    """The estimate table of `tsmeta plan` (a `config.Plan`): per run its simulation and its
    theory jobs (the theory and its variants), then per experiment its runs and its sweep,
    then the total."""
    costs = plan.costs
    theory = {run: 0.0 for run in costs}  # runs without a theory stage have no theory job
    for run, c in plan.theory_costs.items():
        theory[run] += c.seconds
    for run, table in plan.variant_costs.items():
        theory[run] += sum(c.seconds for c in table.values())
    head = (f"{'run':<60} {'sampler':>9} {'seed-tasks':>11} {'peak MB':>8} {'mem_mb':>7} "
            f"{'sim [h]':>8} {'theory [s]':>10} {'chunk':>6} {'mc':>4} {'jobs':>4}")  # fmt: skip
    lines = [head]
    for c in sorted(costs.values(), key=lambda c: -c.simulate_s):
        lines.append(
            f"{c.run[:60]:<60} {c.sampler:>9} {c.seed_tasks:>11.3g} {c.peak / MB:>8.0f} "
            f"{c.mem_mb:>7} {c.simulate_s / 3600:>8.3f} {theory.get(c.run, 0.0):>10.0f} "
            f"{c.draw_chunk:>6} {c.mc_batch:>4} {c.segments:>4}"
        )
    lines += ["", f"{'experiment':<26} {'runs':>5} {'simulation [core-h]':>20} "
                  f"{'theory [core-h]':>16} {'sweep [core-h]':>15} "
                  f"{'longest job [h]':>16}"]  # fmt: skip
    for name, exp in plan.experiments.items():
        own = [costs[r] for r in exp.runs]
        sweep = plan.sweep_costs[name].seconds if name in plan.sweep_costs else 0.0
        jobs = [c.simulate_s / c.segments for c in own] + [theory[r] for r in exp.runs] + [sweep]
        lines.append(
            f"{name:<26} {len(own):>5} {sum(c.simulate_s for c in own) / 3600:>20.2f} "
            f"{sum(theory[r] for r in exp.runs) / 3600:>16.2f} {sweep / 3600:>15.2f} "
            f"{max(jobs) / 3600:>16.2f}"
        )
    sim_h = sum(c.simulate_s for c in costs.values()) / 3600
    theory_h = sum(theory.values()) / 3600
    sweep_h = sum(c.seconds for c in plan.sweep_costs.values()) / 3600
    longest = max([c.simulate_s for c in costs.values()] + [0.0]) / 3600
    lines.append(
        f"\ntotal: {len(costs)} runs, simulation {sim_h:.2f} core-hours (longest run "
        f"{longest:.2f} h), run theories {theory_h:.2f}, theory sweeps {sweep_h:.2f}: "
        f"{sim_h + theory_h + sweep_h:.2f} core-hours (an estimate from tabulated rates, one "
        "thread per job)"
    )
    return "\n".join(lines)
