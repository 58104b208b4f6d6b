"""tsmeta from Python: simulate a run, integrate its theory, read a workflow's results.

These are the functions the workflow stages call (`tsmeta.stages`), with defaults for
interactive use; they return the same xarray Datasets the workflow writes (docs/api.md).

>>> import tsmeta
>>> p = tsmeta.RunParams(N=100, P=50, V=50, seeds=2, alpha_final=2.0, n_records=5)
>>> sim = tsmeta.simulate(p, progress=False)
>>> th = tsmeta.theory_of(sim)
>>> sorted(set(sim.data_vars) & set(th.data_vars))[:4]
['Q', 'R', 'T', 'alpha_diverged']
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from tsmeta.cost import SIMULATION_THREADS
from tsmeta.io import open_dataset, params_from_attrs
from tsmeta.params import RunParams
from tsmeta.paths import ResultPaths
from tsmeta.settings import SimSettings, TheorySettings
from tsmeta.stages import torch_threads


def _params(params: RunParams | dict | None, changes: dict) -> RunParams:
    if params is None:
        params = RunParams()
    elif isinstance(params, dict):
        params = RunParams.from_dict(params)
    return params if not changes else RunParams.from_dict({**params.to_dict(), **changes})


def initial_state(params: RunParams | dict | None = None, **changes) -> xr.Dataset:
    """The task-generation stage: initial overlaps R0, Q0, T and head w0 of every seed.

    Deterministic in the seeds (`params.seed_list`): the simulation and the theory of the
    same parameters start from the same state.
    """
    from tsmeta.tasks import initial_state as draw

    return draw(_params(params, changes))


def simulate(
    params: RunParams | dict | None = None,
    *,
    sampler: str = "auto",
    device: str = "auto",
    progress: bool = True,
    settings: SimSettings | dict | None = None,
    threads: int | None = SIMULATION_THREADS,
    **changes,
) -> xr.Dataset:
    """Simulate a run at finite N, all seeds batched (the workflow's `simulate` stage).

    Parameters
    ----------
    params : RunParams, dict or None
        The run (docs/model.md); None: the defaults (the paper's first experiment).
    sampler, device : str
        `SimSettings.sampler` ('auto', 'gram', 'projected', 'dense') and `.device`
        ('auto', 'cpu', 'cuda'); ignored where `settings` names them.
    progress : bool
        A progress bar (tqdm; the notebook widget in Jupyter where available).
    settings : SimSettings or dict, optional
        Any other simulation setting (`config/README.md`, section simulation).
    threads : int or None
        torch's CPU threads during the run, restored afterwards (None: torch's own setting).
        One, as in the workflow's jobs: the operations are small, so more do not pay, and on
        a busy machine they slow the run down many times (`tsmeta.cost.SIMULATION_THREADS`).
    **changes
        Run parameters changed on top of `params`, e.g. ``seeds=8, eta_w=6``.

    Returns
    -------
    xarray.Dataset
        R, Q, w0, T, eps_meta, eps_meta_p (closed form), the Monte-Carlo errors, diverged
        flags, on the run's alpha grid (dims seed, alpha, k, l, n, m); parameters, settings
        and conventions in the attributes, as in ``results/runs/<run>/sim.nc``.

    Examples
    --------
    >>> sim = tsmeta.simulate(N=200, seeds=4, alpha_final=30)      # doctest: +SKIP
    >>> sim.eps_meta.mean("seed").plot(xscale="log", yscale="log")  # doctest: +SKIP
    """
    from tsmeta.simulation import simulate as run

    p = _params(params, changes)
    chosen = {"sampler": sampler, "device": device}
    if isinstance(settings, SimSettings):
        settings = settings.to_dict()
    st = SimSettings.from_dict({**chosen, **(settings or {})})
    with torch_threads(threads):
        return run(initial_state(p), p, st, progress=_progress(progress))


def theory_of(
    source: RunParams | dict | xr.Dataset | None = None,
    *,
    kind: str = "ode",
    progress: bool = False,
    **options,
) -> xr.Dataset:
    """The order-parameter theory of a run, one trajectory per seed from its own initial
    overlaps (the workflow's `theory` stage).

    Parameters
    ----------
    source : RunParams, dict, or a Dataset written by tsmeta (simulation, theory or tasks)
        The run; from a Dataset its parameters are read from the attributes, so
        ``theory_of(simulate(p))`` integrates from exactly the simulation's initial state.
    kind : str
        The theory kind ('ode': the deterministic N -> infinity limit, docs/theory.md).
    **options
        Theory settings (`TheorySettings`: method, rtol, atol, finite_v, finite_p, ...) and
        run parameters changed on top of the source's (``eta_w=4.5``), told apart by name.

    Returns
    -------
    xarray.Dataset
        Same variables, dims and alpha grid as the simulation; the attribute `terms`
        lists the right-hand side.

    Examples
    --------
    >>> th = tsmeta.theory_of(sim, finite_p=False)  # doctest: +SKIP
    >>> slower = tsmeta.theory_of(sim, eta_w=4.5)  # doctest: +SKIP
    """
    from tsmeta.theory import theory_dataset

    fields = {f.name for f in dataclasses.fields(TheorySettings)}
    param_names = {f.name for f in dataclasses.fields(RunParams)}
    unknown = sorted(set(options) - fields - param_names)
    if unknown:
        raise ValueError(
            f"theory_of: {unknown[0]!r} is neither a run parameter {sorted(param_names)} nor "
            f"a theory setting {sorted(fields)}"
        )
    changes = {k: v for k, v in options.items() if k in param_names}
    settings = {"kind": kind} | {k: v for k, v in options.items() if k in fields}
    source = params_from_attrs(source.attrs) if isinstance(source, xr.Dataset) else source
    params = _params(source, changes)
    st = TheorySettings.from_dict(settings)
    return _quiet(progress, theory_dataset, initial_state(params), params, st)


@dataclass
class Run:
    """The files of one run folder (``results/runs/<run>/``), each opened lazily by xarray."""

    path: Path
    params: RunParams
    tasks: xr.Dataset | None = None
    sim: xr.Dataset | None = None
    theory: xr.Dataset | None = None
    variants: dict[str, xr.Dataset] = field(default_factory=dict)


def open_run(path: str | os.PathLike) -> Run:
    """Read a run folder of a workflow: tasks.nc, sim.nc, theory.nc and theory_<label>.nc.

    >>> run = tsmeta.open_run("results/runs/fo-anil_K~3_M~3_N~200_eta_J~3_eta_w~9")
    >>> run.sim.eps_meta.mean("seed")
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder (results/runs/<run>)")
    files = {p.stem: p for p in sorted(path.glob("*.nc"))}
    if not files:
        raise FileNotFoundError(f"{path}: no netCDF file in this run folder")
    opened = {name: open_dataset(p) for name, p in files.items()}
    params = params_from_attrs(next(iter(opened.values())).attrs)
    variants = {n[len("theory_") :]: ds for n, ds in opened.items() if n.startswith("theory_")}
    return Run(path, params, opened.get("tasks"), opened.get("sim"), opened.get("theory"), variants)


@dataclass
class ExperimentResults:
    """What the workflow wrote for one experiment (one paper figure)."""

    name: str
    runs: dict[str, Run]
    compare: xr.Dataset | None = None
    sweep: xr.Dataset | None = None
    figure: xr.Dataset | None = None


def open_experiment(
    name: str, config: str | os.PathLike | None = None, results: str | os.PathLike | None = None
) -> ExperimentResults:
    """Read an experiment's results: its runs (in config order), compare.nc, sweep.nc and
    the figure's data (``results/figures/<name>.nc``), where they exist.

    config: the config file that defines the experiment (default: config/config.yaml of the
    repository); results: the results folder (default: the config's `results`).
    """
    from tsmeta import config as tsconfig

    path = Path(config) if config is not None else tsconfig.default_config_path()
    plan = tsconfig.expand(tsconfig.workflow_config([str(path)]))
    if name not in plan.experiments:
        raise KeyError(f"experiment {name!r} is not in {path}; it has {sorted(plan.experiments)}")
    root = Path(results) if results is not None else path.parent.parent / plan.results
    exp = plan.experiments[name]
    runs = {r: open_run(root / "runs" / r) for r in exp.runs if (root / "runs" / r).is_dir()}
    paths = ResultPaths(str(root))
    found = {
        "compare": Path(paths.compare(name)),
        "sweep": Path(paths.sweep(name)),
        "figure": Path(paths.figure(name, "nc")),
    }
    found = {key: open_dataset(p) if p.exists() else None for key, p in found.items()}
    return ExperimentResults(name, runs, **found)


def _progress(enabled: bool):
    """None (the default terminal bar) or False (no bar)."""
    return None if enabled else False


def _quiet(progress: bool, fn, *args):
    if progress:
        return fn(*args)
    from tsmeta.progress import silenced

    with silenced():
        return fn(*args)
