"""Side-by-side timings: the samplers against the floor of their work, against each other, and
the ODE theory.

    python benchmarks/bench_simulator.py [--device cpu|cuda] [--sizes 500 1000 2000] [--seeds 4]
    python benchmarks/bench_simulator.py --floor-only  # seed-tasks/s and the ratio to the floor
    python benchmarks/bench_simulator.py --gram-only   # dense, projected, gram at N = 1e3..1e6
    python benchmarks/bench_simulator.py --crossover   # gram / projected at small N (`auto`)

Prints first the projected and Gram samplers' seed-tasks per second next to the floor (the
time to draw one seed-task's field values the fastest exact way and evaluate their
activations) measured in the same run, with the ratio; then seed-tasks per second of the dense
and projected samplers (FO-ANIL, K = M = 3, P = V = N) measured in
the same process, their ratio, the time the ODE takes to alpha = 450, and a batched theory
sweep against the same sweep integrated one parameter set at a time; the Gram sampler next to
both at N = 1e3 ... 1e6 (P = V = 1000 and 20); then the cost of the
finite-P term (one ODE and the default config's phase-diagram sweep, with and without it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state


def tasks_per_second(
    params: RunParams,
    sampler: str,
    device: str,
    seconds: float,
    draw_chunk: int = 64,
    tasks=None,
    repeats: int = 1,
    compile: bool = False,
) -> float:
    """Outer steps per second times seeds of a fresh simulation (`simulation_rate`)."""
    settings = SimSettings(sampler=sampler, device=device, draw_chunk=draw_chunk, compile=compile)
    sim = Simulation(initial_state(params) if tasks is None else tasks, params, settings)
    return simulation_rate(sim, seconds, repeats, device)


def simulation_rate(sim: Simulation, seconds: float, repeats: int = 1, device="cpu") -> float:
    """Seed-tasks per second of `sim` (recording excluded), after one warm-up chunk; the best
    of `repeats` windows of `seconds` (a shared machine's load only slows a window)."""
    chunk = sim.sampler.chunk

    def run_chunk():
        sim.steps(sim.draw(chunk), 0, chunk)

    run_chunk()
    _sync(device)
    best = 0.0
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            run_chunk()
            done += chunk
        _sync(device)
        best = max(best, done * len(sim.seeds) / (time.perf_counter() - start))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def floor_seconds(params: RunParams, device: str, repeats: int = 50, clock=time.perf_counter):
    """The floor of one seed-task (FO-ANIL, K + M fields per example): drawing the field values
    of its P + V examples the fastest exact way (standard normals in float32, upcast to
    float64) and evaluating the activations (erf of every field, exp of the validation students'
    fields for g'); measured on (seeds, P + V, K + M) arrays as a batch of seeds draws them."""
    p = params
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (p.seeds, p.P + p.V, p.K + p.M)

    def once():
        z = torch.randn(shape, generator=gen, dtype=torch.float32, device=device)
        z = z.to(torch.float64)
        torch.erf(z)
        torch.exp(z[:, p.P :, : p.K])

    once()
    _sync(device)
    best = float("inf")
    for _ in range(3):
        start = clock()
        for _ in range(repeats):
            once()
        _sync(device)
        best = min(best, (clock() - start) / repeats)
    return best / p.seeds


def bench_floor(cases, device, seconds):
    """Seed-tasks per second of the samplers next to the floor measured in the same run."""
    print(f"# against the floor (random numbers and activations of one seed-task, "
          f"`floor_seconds`), FO-ANIL, K = M = 3, device {device}")  # fmt: skip
    columns = (
        ("projected", False, "projected [/s]"),
        ("gram", False, "gram [/s]"),
        ("gram", True, "gram compiled [/s]"),
    )  # (sampler, compile, header)
    print(
        f"{'N':>8} {'P = V':>6} {'seeds':>6} {'floor [/s]':>11} "
        + " ".join(f"{label:>{len(label) + 1}} {'/floor':>7}" for *_, label in columns)
    )
    for N, PV, seeds in cases:
        p = RunParams(N=N, P=PV, V=PV, seeds=seeds)
        floor = 1.0 / floor_seconds(p, device)
        cells = []
        for name, compiled, label in columns:
            width = len(label) + 1
            if _numbers_per_task(name, p) * seeds > DRAW_BUDGET:
                cells.append(f"{'skipped':>{width}} {'':>7}")
                continue
            rate = tasks_per_second(p, name, device, seconds / 3, repeats=3, compile=compiled)
            cells.append(f"{rate:>{width}.0f} {floor / rate:>7.2f}")
        print(f"{N:>8} {PV:>6} {seeds:>6} {floor:>11.0f} " + " ".join(cells))


def sampler_at(rev: str):
    """The GramSampler class of git revision `rev` of this repository (the "before" of a
    speed change, measured in the same process as the working tree's)."""
    import importlib.util
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:src/tsmeta/simulation/gram.py"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / f"gram_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"gram_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GramSampler


def bench_gram_floor(rev: str, cases, device, rounds: int):
    """Gram against the floor: before (revision `rev`) and the working tree's eager and fused
    updates (`simulation.kernel`; fused on a CPU only), in alternating rounds of one floor
    measurement and one draw chunk of each, timed in CPU seconds of this thread (the wall
    time of a machine shared with other jobs swings by several times from one round to the
    next; its CPU time does not): medians over rounds."""
    kernels = ("eager", "fused") if device == "cpu" else ("eager",)
    print(f"# gram / floor, before = {rev}, after = working tree ({', '.join(kernels)}), "
          f"median of {rounds} alternating rounds, thread CPU time, device {device}; "
          "[us] per seed-task (drawn and applied)")  # fmt: skip
    names = ("before", *kernels)
    print(
        f"{'N':>8} {'P = V':>6} {'seeds':>6} {'floor [us]':>11} "
        + " ".join(f"{name + ' [us]':>12} {'/floor':>7}" for name in names)
    )
    before_cls = sampler_at(rev)
    for N, PV, seeds in cases:
        p = RunParams(N=N, P=PV, V=PV, seeds=seeds, eta_J=10.0)
        tasks = initial_state(p)
        sims = {}
        for name in names:
            kernel = "eager" if name == "before" else name
            settings = SimSettings(sampler="gram", device=device, kernel=kernel)
            sims[name] = Simulation(tasks, p, settings)
        sims["before"].sampler = before_cls(tasks, p, sims["before"].settings,
                                            sims["before"].device, torch.float64)  # fmt: skip
        seconds = {name: [] for name in ("floor", *names)}
        for sim in sims.values():
            _chunk_cpu_seconds(sim, device)  # warm-up (and the fused kernel's compile)
        for _ in range(rounds):
            seconds["floor"].append(floor_seconds(p, device, repeats=10, clock=time.thread_time))
            for name, sim in sims.items():
                seconds[name].append(_chunk_cpu_seconds(sim, device) / seeds)
        us = {name: 1e6 * float(np.median(values)) for name, values in seconds.items()}
        cells = " ".join(f"{us[name]:>12.2f} {us[name] / us['floor']:>7.2f}" for name in names)
        print(f"{N:>8} {PV:>6} {seeds:>6} {us['floor']:>11.2f} {cells}", flush=True)


def _chunk_cpu_seconds(sim: Simulation, device: str) -> float:
    """CPU seconds of this thread per task of one draw chunk (drawn and applied)."""
    start = time.thread_time()
    draws = sim.draw(sim.sampler.chunk)
    sim.steps(draws, 0, sim.sampler.chunk)
    _sync(device)
    return (time.thread_time() - start) / sim.sampler.chunk


def bench_samplers(sizes, seeds, device, seconds):
    print(f"# samplers: FO-ANIL, K = M = 3, P = V = N, {seeds} seeds, device {device}")
    print(f"{'N':>6} {'dense [seed-tasks/s]':>22} {'projected [seed-tasks/s]':>26} {'ratio':>8}")
    for N in sizes:
        params = RunParams(N=N, P=N, V=N, seeds=seeds)
        dense = tasks_per_second(params, "dense", device, seconds)
        projected = tasks_per_second(params, "projected", device, seconds)
        print(f"{N:>6} {dense:>22.1f} {projected:>26.1f} {projected / dense:>8.1f}")


# random numbers one chunk of tasks may draw (all seeds): a bound on memory and on the time
# of one timing chunk; a sampler that needs more for a single task is skipped
DRAW_BUDGET = 5e7


def _numbers_per_task(sampler: str, p: RunParams) -> float:
    """Random numbers one task draws per seed (the dominant cost of the weight samplers)."""
    fields = (p.P + p.V) * (p.K + p.M)
    return {"dense": (p.P + p.V) * p.N, "projected": p.K * p.N + fields, "gram": fields}[sampler]


def bench_gram(sizes, data_sizes, seeds, device, seconds):
    """Seed-tasks per second of dense, projected and gram side by side, N from 1e3 to 1e6
    (each the best of three windows of seconds / 3)."""
    print(f"# samplers at large N: FO-ANIL, K = M = 3, {seeds} seeds, device {device}; "
          f"a sampler is skipped where one task would draw more than {DRAW_BUDGET:.0e} "
          "random numbers over the seeds (memory, and minutes per measurement)")  # fmt: skip
    names = ("dense", "projected", "gram")
    head = "".join(f"{n + ' [seed-tasks/s]':>28}" for n in names)
    print(f"{'P = V':>6} {'N':>8}{head} {'gram/projected':>15}")
    for PV in data_sizes:
        first = None
        for N in sizes:
            p = RunParams(N=N, P=PV, V=PV, seeds=seeds)
            rates = {}
            vectors = None
            for name in names:
                per_task = _numbers_per_task(name, p) * seeds
                if name != "gram" and per_task > DRAW_BUDGET:
                    rates[name] = None
                    continue
                if name != "gram" and vectors is None:
                    vectors = initial_state(p, method="vectors")  # B, J at any N
                chunk = int(max(1, min(64, DRAW_BUDGET // per_task)))
                tasks = vectors if name != "gram" else None
                rates[name] = tasks_per_second(p, name, device, seconds / 3, chunk, tasks, 3)
            first = first or rates["gram"]
            cells = "".join(
                f"{'skipped':>28}" if r is None else f"{r:>28.1f}" for r in rates.values()
            )
            ratio = rates["gram"] / rates["projected"] if rates["projected"] else None
            ratio = f"{ratio:>15.1f}" if ratio else f"{'':>15}"
            print(f"{PV:>6} {N:>8}{cells}{ratio}")
        print(f"# P = V = {PV}: gram at N = {sizes[-1]:g} runs at {rates['gram'] / first:.2f} "
              f"times its rate at N = {sizes[0]:g}")  # fmt: skip
        ratio = gram_flatness(PV, sizes[0], sizes[-1], seeds, device)
        print(f"# alternating chunks (median of 20 rounds): gram at N = {sizes[-1]:g} runs at "
              f"{ratio:.2f} times its rate at N = {sizes[0]:g}")  # fmt: skip


def gram_flatness(PV: int, small: int, large: int, seeds: int, device: str, rounds=20) -> float:
    """Rate of gram at N = large over its rate at N = small: both simulations built once, one
    chunk of each in turn, the median of the per-round ratios (cancels the load's drift)."""
    sims = []
    for N in (small, large):
        p = RunParams(N=N, P=PV, V=PV, seeds=seeds)
        sims.append(Simulation(initial_state(p), p, SimSettings(sampler="gram", device=device)))

    def chunk_seconds(sim):
        start = time.perf_counter()
        sim.steps(sim.draw(sim.sampler.chunk), 0, sim.sampler.chunk)
        _sync(device)
        return time.perf_counter() - start

    for sim in sims:
        chunk_seconds(sim)  # warm-up
    ratios = [chunk_seconds(sims[0]) / chunk_seconds(sims[1]) for _ in range(rounds)]
    return float(np.median(ratios))


def bench_crossover(sizes, data_sizes, widths, seeds, device, seconds, repeats=5):
    """gram / projected speed at small N: median of `repeats` alternating measurements (the
    machine's load drifts; alternating keeps the ratio fair). The crossover encoded in
    tsmeta.settings.resolve_sampler comes from this table."""
    print(f"# crossover: gram / projected seed-tasks per second, FO-ANIL, {seeds} seeds, "
          f"median of {repeats} alternating measurements of {seconds:g} s")  # fmt: skip
    print(f"{'P + V':>6} {'K + M':>6} " + "".join(f"{'N=' + str(N):>9}" for N in sizes))
    for PV in data_sizes:
        for K in widths:
            row = []
            for N in sizes:
                if N < 2 * K:
                    row.append(f"{'':>9}")
                    continue
                p = RunParams(N=N, P=PV // 2, V=PV - PV // 2, K=K, M=K, seeds=seeds, eta_J=1.0)
                ratios = [
                    tasks_per_second(p, "gram", device, seconds)
                    / tasks_per_second(p, "projected", device, seconds)
                    for _ in range(repeats)
                ]
                row.append(f"{np.median(ratios):>9.2f}")
            print(f"{PV:>6} {2 * K:>6} " + "".join(row), flush=True)


def bench_theory(sweep_size: int):
    from tsmeta.theory import integrate

    rng = np.random.default_rng(0)
    K = M = 3
    R0 = 0.1 * rng.standard_normal((K, M))
    Q0 = np.eye(K) + 0.05 * rng.standard_normal((K, K))
    Q0 = (Q0 + Q0.T) / 2
    T, w0 = np.eye(M), np.zeros(K)
    alphas = RunParams().alphas()
    start = time.perf_counter()
    out = integrate(R0[None], Q0[None], T[None], w0[None], RunParams(), alphas)
    one = time.perf_counter() - start
    below = alphas[np.flatnonzero(out.eps_meta[0] < 1e-2)]
    print(f"# ODE, K = M = 3, eta_J = 3, eta_w = 9, to alpha = 450: {one:.2f} s "
          f"(eps_meta < 1e-2 from alpha = {below[0] if len(below) else np.nan:.1f})")  # fmt: skip
    grid = np.linspace(0.5, 6, sweep_size)
    members = [RunParams(eta_J=float(e)) for e in grid]
    stack = [np.broadcast_to(x, (sweep_size, *x.shape)) for x in (R0, Q0, T, w0)]
    start = time.perf_counter()
    integrate(*stack, members, alphas)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for p in members:
        integrate(R0[None], Q0[None], T[None], w0[None], p, alphas)
    looped = time.perf_counter() - start
    print(f"# theory sweep of {sweep_size} eta_J values: batched {batched:.2f} s, "
          f"one by one {looped:.2f} s, ratio {looped / batched:.1f}")  # fmt: skip


def bench_finite_p(config: str, experiment: str):
    """The finite-P term's cost: one ODE to alpha = 450 and the phase-diagram sweep of the
    default config, each integrated with and without it, side by side."""
    from tsmeta.config import expand, load
    from tsmeta.theory import integrate
    from tsmeta.theory.sweeps import run_sweep

    rng = np.random.default_rng(0)
    K = M = 3
    R0 = 0.1 * rng.standard_normal((1, K, M))
    Q0 = np.eye(K)[None] + 0.0
    T, w0 = np.eye(M)[None], np.zeros((1, K))
    alphas = RunParams().alphas()
    print("# finite-P term: wall time without / with it (same process, same state)")
    print(f"{'integration':<44} {'without [s]':>12} {'with [s]':>10} {'ratio':>7}")
    times = []
    for finite_p in (False, True):
        start = time.perf_counter()
        out = integrate(R0, Q0, T, w0, RunParams(), alphas, {"finite_p": finite_p})
        times.append((time.perf_counter() - start, out.nfev))
    (t0, n0), (t1, n1) = times
    label = f"one ODE to alpha = 450 (RK45; {n0} / {n1} RHS)"
    print(f"{label:<44} {t0:>12.2f} {t1:>10.2f} {t1 / t0:>7.2f}")
    exp = expand(load(config)).experiments[experiment]
    sweep = dict(exp.theory_sweep)
    if "algorithm" in sweep["grid"]:  # the term is FO-ANIL's (and FO-MAML's): time those
        sweep["grid"] = {**sweep["grid"], "algorithm": ["fo-anil"]}
    times = []
    for finite_p in (False, True):
        settings = {**exp.theory_settings, "finite_p": finite_p}
        start = time.perf_counter()
        ds = run_sweep(sweep, settings)
        times.append(time.perf_counter() - start)
    label = f"{experiment} sweep ({ds.attrs['members']} members, {exp.theory_settings['method']})"
    print(f"{label:<44} {times[0]:>12.2f} {times[1]:>10.2f} {times[1] / times[0]:>7.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
    parser.add_argument("--sweep", type=int, default=32, help="parameter sets in the theory sweep")
    parser.add_argument("--no-theory", action="store_true")
    parser.add_argument("--gram-only", action="store_true", help="only the large-N sampler table")
    parser.add_argument(
        "--gram-sizes", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6], help="N of that table"
    )
    parser.add_argument("--gram-data", type=int, nargs="+", default=[1000, 20], help="P = V")
    parser.add_argument(
        "--crossover", action="store_true", help="only gram / projected at small N (auto's rule)"
    )
    parser.add_argument("--finite-p-only", action="store_true", help="only the finite-P timings")
    parser.add_argument("--floor-only", action="store_true", help="only the floor table")
    parser.add_argument(
        "--gram-floor", metavar="REV", help="only gram / floor at P = V = 50, before (git REV) "
        "and after (the working tree)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=9, help="rounds of --gram-floor")
    parser.add_argument("--config", default="config/config.yaml", help="for the sweep timing")
    parser.add_argument("--sweep-experiment", default="phase_diagram")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (1 thread)"
    print(f"# torch {torch.__version__} on {name}")
    if args.crossover:
        bench_crossover([16, 32, 64, 128, 256, 512], [20, 400, 2000], [1, 3, 6], args.seeds,
                        args.device, min(args.seconds, 0.5))  # fmt: skip
        return
    if args.gram_only:
        sizes = [int(n) for n in args.gram_sizes]
        bench_gram(sizes, args.gram_data, args.seeds, args.device, args.seconds)
        return
    if args.gram_floor:
        cases = [(10000, 50, 8), (10000, 50, 16), (10000, 50, 64), (10000, 1000, 16)]
        bench_gram_floor(args.gram_floor, cases, args.device, args.rounds)
        return
    if args.finite_p_only:
        bench_finite_p(args.config, args.sweep_experiment)
        return
    floor_cases = [(1000, 1000, 4), (1000, 1000, 32), (10000, 50, 8), (10000, 50, 64)]
    bench_floor(floor_cases, args.device, args.seconds)
    if args.floor_only:
        return
    bench_samplers(args.sizes, args.seeds, args.device, args.seconds)
    bench_gram([int(n) for n in args.gram_sizes], args.gram_data, args.seeds, args.device,
               args.seconds)  # fmt: skip
    if not args.no_theory:
        bench_theory(args.sweep)
        bench_finite_p(args.config, args.sweep_experiment)


if __name__ == "__main__":
    main()
