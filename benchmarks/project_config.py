"""Measured projection of the simulation cost of a config, run by run.

    python benchmarks/project_config.py [--config config/paper.yaml] [--seconds 2]

For every run of the config: the sampler `auto` picks, the seed-tasks the run needs
(seeds x alpha_final x N), its rate measured here over a short window with the run's own
settings (one CPU thread, chunks drawn as in the workflow), one Monte-Carlo measurement timed
and multiplied by the number of records that take one, and the projected simulation time.
The theory stages are not included here (`benchmarks/cost_model.py` checks their
estimates). Prints the runs by cost, each experiment's share and the total in
core-hours: a projection from measured rates, not a run.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_simulator import simulation_rate  # benchmarks/ is the script's folder

from tsmeta import config as tsconfig
from tsmeta.settings import SimSettings, resolve_sampler
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state


def measure(params, settings: SimSettings, seconds: float) -> tuple[float, float]:
    """(seed-tasks per second, seconds of one Monte-Carlo measurement of every seed)."""
    sim = Simulation(initial_state(params), params, settings)
    rate = simulation_rate(sim, seconds)
    start = time.perf_counter()
    sim.eps_meta_monte_carlo()
    return rate, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    plan = tsconfig.expand(tsconfig.load(args.config))
    rows = []
    for name, params in plan.runs.items():
        settings = SimSettings.from_dict(plan.sim_settings[name])
        sampler = resolve_sampler(settings.sampler, params)
        rate, mc = measure(params, settings, args.seconds)
        n_mc = len(range(0, len(params.record_steps()), settings.mc_every)) + 1
        seed_tasks = params.seeds * params.total_steps
        total = seed_tasks / rate + n_mc * mc
        rows.append((total, name, sampler, seed_tasks, rate, n_mc * mc))
        print(f"# measured {name}: {rate:.0f} seed-tasks/s", flush=True)
    rows.sort(reverse=True)
    print(f"\n{'run':<70} {'sampler':>9} {'seed-tasks':>11} {'rate [/s]':>10} "
          f"{'MC [s]':>8} {'total [s]':>10}")  # fmt: skip
    for total, name, sampler, seed_tasks, rate, mc in rows:
        print(f"{name[:70]:<70} {sampler:>9} {seed_tasks:>11.3g} {rate:>10.0f} {mc:>8.0f} "
              f"{total:>10.0f}")  # fmt: skip
    cost = {name: total for total, name, *_ in rows}
    share = {exp.name: sum(cost[r] for r in exp.runs) for exp in plan.experiments.values()}
    print(f"\n{'experiment':<24} {'runs':>5} {'core-hours':>11}   (shared runs count in each)")
    for exp in sorted(plan.experiments.values(), key=lambda e: -share[e.name]):
        print(f"{exp.name:<24} {len(exp.runs):>5} {share[exp.name] / 3600:>11.2f}")
    core_s = sum(r[0] for r in rows)
    longest = rows[0][0] / 3600
    print(
        f"\n# {args.config}: {len(rows)} runs, projected simulation cost {core_s / 3600:.2f} "
        f"core-hours (one thread per job), the longest run {longest:.2f} h"
    )


if __name__ == "__main__":
    main()
