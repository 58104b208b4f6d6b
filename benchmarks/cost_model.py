"""The cost model (`tsmeta.cost`) against measured times.

    python benchmarks/cost_model.py                     # measure small theory jobs here
    python benchmarks/cost_model.py --results results --config config/config.yaml

Without --results: integrates a set of small theory jobs (ODE with linear-noise bands, SDE,
a sweep; K = 3..8, FO-ANIL and ANIL, erf and relu) and prints the CPU seconds each took next
to the model's estimate (the simulation's rates: `benchmarks/project_config.py`). With
--results: reads the wall times that the files of a finished (or partly finished) workflow
recorded (sim.nc, theory files, sweeps: attributes wall_time_s, noise_wall_time_s) and prints
them next to the estimates of the config's plan, job by job, then per experiment: jobs
finished, their estimate and measured time, and the estimate of the jobs left. A job asks
the scheduler for TIME_MARGIN x the estimate: a ratio measured / estimate above that margin
is a job the scheduler could kill.
"""

from __future__ import annotations

import argparse
import os
import time

from tsmeta import config as tsconfig
from tsmeta import cost
from tsmeta.params import RunParams
from tsmeta.paths import ResultPaths
from tsmeta.settings import TheorySettings

BASE = {"M": 3, "N": 1000, "P": 1000, "V": 1000}
CASES = [  # (run parameters, theory settings)
    ({"algorithm": "fo-anil", "K": 3, "seeds": 8, "alpha_final": 60.0, "n_records": 30}, {}),
    (
        {
            "algorithm": "fo-anil",
            "K": 4,
            "eta_w": 12.0,
            "seeds": 4,
            "alpha_final": 20.0,
            "n_records": 20,
        },
        {},
    ),  # fmt: skip
    (
        {
            "algorithm": "fo-anil",
            "K": 6,
            "eta_w": 18.0,
            "seeds": 4,
            "alpha_final": 20.0,
            "n_records": 20,
        },
        {},
    ),  # fmt: skip
    (
        {
            "algorithm": "fo-anil",
            "K": 8,
            "eta_w": 24.0,
            "seeds": 2,
            "alpha_final": 10.0,
            "n_records": 10,
        },
        {},
    ),  # fmt: skip
    (
        {
            "algorithm": "anil",
            "K": 3,
            "eta_w": 6.0,
            "seeds": 4,
            "alpha_final": 40.0,
            "n_records": 20,
        },
        {},
    ),  # fmt: skip
    (
        {
            "algorithm": "fo-anil",
            "K": 3,
            "activation": "relu",
            "seeds": 3,
            "alpha_final": 30.0,
            "n_records": 20,
        },
        {},
    ),  # fmt: skip
    (
        {"algorithm": "fo-anil", "K": 3, "seeds": 8, "alpha_final": 20.0, "n_records": 10},
        {"kind": "sde", "realisations": 2},
    ),  # fmt: skip
]
SWEEPS = [
    {"base": {"algorithm": algorithm, "K": 3, "M": 3, "eta_J": 3.0, "eta_w": 9.0},
     "grid": {"eta_J": {"start": 0.03, "stop": 30.0, "num": 4, "scale": "log"},
              "eta_w": {"start": 2.25, "stop": 36.0, "num": 4, "scale": "log"}},
     "levels": [0.01]}
    for algorithm in ("fo-anil", "anil")
]  # fmt: skip
SWEEP_SETTINGS = {"method": "BDF", "rtol": 1e-6, "atol": 1e-8}


def row(what: str, estimate: float, measured: float) -> str:
    return f"{what[:70]:<70} {estimate:>9.1f} {measured:>9.1f} {measured / estimate:>7.2f}"


def measure_here() -> list[str]:
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset
    from tsmeta.theory.sweeps import run_sweep

    lines = []
    for values, settings in CASES:
        params = RunParams.from_dict({**BASE, **values})
        st = TheorySettings.from_dict(settings)
        tasks = initial_state(params)
        start = time.process_time()
        theory_dataset(tasks, params, st)
        spent = time.process_time() - start
        name = f"{params.name()} {settings or ''}"
        lines.append(row(name, cost.theory_seconds(params, st), spent))
    for sweep in SWEEPS:
        start = time.process_time()
        run_sweep(sweep, SWEEP_SETTINGS)
        spent = time.process_time() - start
        what = f"sweep {sweep['base']['algorithm']}, 16 members"
        lines.append(row(what, cost.sweep_seconds(sweep), spent))
    return lines


def results_jobs(config: str, results: str) -> list[tuple[str, str, float, float | None]]:
    """Every job of the config's plan: (experiment, job, estimate [s], recorded wall time [s]
    or None where its file is not there yet). A run shared by experiments counts for the first
    (config order)."""
    import xarray as xr

    plan = tsconfig.validate(tsconfig.load(config))
    paths = ResultPaths(results)
    owner = {}
    for name, exp in plan.experiments.items():
        for run in exp.runs:
            owner.setdefault(run, name)

    def recorded(path):
        if not os.path.exists(path):
            return None
        with xr.open_dataset(path) as ds:
            return float(ds.attrs.get("wall_time_s", 0.0)) + float(
                ds.attrs.get("noise_wall_time_s", 0.0)
            )

    jobs = [(run, f"simulate {run}", paths.sim(run), c.simulate_s) for run, c in plan.costs.items()]
    jobs += [
        (run, f"theory {run}", paths.theory(run), c.seconds) for run, c in plan.theory_costs.items()
    ]
    jobs += [
        (run, f"theory_{label} {run}", paths.theory(run, label), c.seconds)
        for run, table in plan.variant_costs.items()
        for label, c in table.items()
    ]
    out = [(owner[run], what, estimate, recorded(path)) for run, what, path, estimate in jobs]
    out += [
        (name, f"sweep {name}", c.seconds, recorded(paths.sweep(name)))
        for name, c in plan.sweep_costs.items()
    ]
    return out


def by_experiment(jobs) -> list[str]:
    """Per experiment: jobs finished, their estimate and recorded time, the estimate of the
    rest [core-hours]."""
    lines = [
        f"{'experiment':<28} {'jobs done':>10} {'estimate':>9} {'measured':>9} {'left':>7}"
        "   [core-h]"
    ]
    groups = {}
    for job in jobs:
        groups.setdefault(job[0], []).append(job)
    for name, mine in [*groups.items(), ("total", jobs)]:
        done = [j for j in mine if j[3] is not None]
        lines.append(
            f"{name:<28} {f'{len(done)}/{len(mine)}':>10} "
            f"{sum(j[2] for j in done) / 3600:>9.2f} {sum(j[3] for j in done) / 3600:>9.2f} "
            f"{sum(j[2] for j in mine if j[3] is None) / 3600:>7.2f}"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="a results folder of a workflow run")
    parser.add_argument("--config", default="config/config.yaml")
    args = parser.parse_args(argv)
    if args.results:
        jobs = results_jobs(args.config, args.results)
        lines = [
            row(what, estimate, spent) for _, what, estimate, spent in jobs if spent is not None
        ]
    else:
        jobs, lines = [], measure_here()
    print(f"{'job':<70} {'estimate':>9} {'measured':>9} {'ratio':>7}   [s]")
    print("\n".join(lines))
    ratios = sorted(float(line.split()[-1]) for line in lines)
    if ratios:
        print(
            f"\n{len(ratios)} jobs: measured / estimate from {ratios[0]:.2f} to {ratios[-1]:.2f}, "
            f"median {ratios[len(ratios) // 2]:.2f}; a job asks for {cost.TIME_MARGIN:g} x the "
            f"estimate + {cost.JOB_OVERHEAD_MIN} minutes"
        )
    if jobs:
        print("\n" + "\n".join(by_experiment(jobs)))


if __name__ == "__main__":
    main()
