"""Side-by-side timings: dense vs projected sampler, and the ODE theory.

    python benchmarks/bench_simulator.py [--device cpu|cuda] [--sizes 500 1000 2000] [--seeds 4]

Prints seed-tasks per second of both samplers (FO-ANIL, K = M = 3, P = V = N) measured in
the same process, their ratio, the time the ODE takes to alpha = 450, and a batched theory
sweep against the same sweep integrated one parameter set at a time.
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


def tasks_per_second(params: RunParams, sampler: str, device: str, seconds: float) -> float:
    """Outer steps per second times seeds (recording excluded), after one warm-up chunk."""
    sim = Simulation(initial_state(params), params, SimSettings(sampler=sampler, device=device))
    chunk = sim.sampler.chunk

    def run_chunk():
        draws = sim.draw(chunk)
        for c in range(chunk):
            sim.step(draws, c)

    run_chunk()
    _sync(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run_chunk()
        done += chunk
    _sync(device)
    return done * params.seeds / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_samplers(sizes, seeds, device, seconds):
    print(f"# samplers: FO-ANIL, K = M = 3, P = V = N, {seeds} seeds, device {device}")
    print(f"{'N':>6} {'dense [seed-tasks/s]':>22} {'projected [seed-tasks/s]':>26} {'ratio':>8}")
    for N in sizes:
        params = RunParams(N=N, P=N, V=N, seeds=seeds)
        dense = tasks_per_second(params, "dense", device, seconds)
        projected = tasks_per_second(params, "projected", device, seconds)
        print(f"{N:>6} {dense:>22.1f} {projected:>26.1f} {projected / dense:>8.1f}")


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
    parser.add_argument("--sweep", type=int, default=32, help="parameter sets in the theory sweep")
    parser.add_argument("--no-theory", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (1 thread)"
    print(f"# torch {torch.__version__} on {name}")
    bench_samplers(args.sizes, args.seeds, args.device, args.seconds)
    if not args.no_theory:
        bench_theory(args.sweep)


if __name__ == "__main__":
    main()
