"""The workflow stages as plain functions of paths: used by the Snakemake scripts and the CLI.

tasks -> simulate -> theory -> compare -> figure data -> figure. Each stage reads netCDF files,
writes one output atomically, and can run without Snakemake.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import xarray as xr

from tsmeta.io import atomic_output, open_dataset, params_from_attrs, write_netcdf
from tsmeta.params import FIRST_STAGE_LEVEL, RunParams
from tsmeta.settings import SimSettings, TheorySettings

log = logging.getLogger(__name__)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op CPU threads set to `threads` for the block and restored after it
    (None or 0: left as they are)."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        set_threads(before)


def make_tasks(params: RunParams, out: str | os.PathLike) -> Path:
    from tsmeta.tasks import initial_state

    return write_netcdf(initial_state(params), out)


def _tasks_for(path, params: RunParams) -> xr.Dataset:
    # B and J only where N is small enough to store them (tasks.VECTORS_MAX)
    tasks = open_dataset(path, stage="tasks", required=("w0", "R0", "Q0", "T"))
    found = params_from_attrs(tasks.attrs)
    for key in ("N", "K", "M", "seeds", "seed_offset", "init", "init_std", "teacher_init"):
        if getattr(found, key) != getattr(params, key):
            raise ValueError(
                f"{path}: made for {key}={getattr(found, key)!r}, but this run has "
                f"{key}={getattr(params, key)!r}; rerun the tasks stage"
            )
    return tasks


def make_simulation(
    tasks_path,
    params: RunParams,
    settings: SimSettings | dict | None,
    out,
    checkpoint=None,
    progress=None,
    resume_from=None,
) -> Path:
    """sim.nc of a run; from the state in `resume_from` (the last segment of a run split
    into jobs) where there is no checkpoint of its own."""
    from tsmeta.simulation import simulate

    tasks = _tasks_for(tasks_path, params)
    if not isinstance(settings, SimSettings):
        settings = SimSettings.from_dict(settings)
    ds = simulate(tasks, params, settings, checkpoint=checkpoint, progress=progress,
                  resume_from=resume_from)  # fmt: skip
    path = write_netcdf(ds, out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return path


def make_segment(
    tasks_path, params: RunParams, settings: dict, out, stop_at: int, resume_from=None
) -> Path:
    """One job of a run split by max_runtime (tsmeta.cost): from the previous segment's
    state (or the start) to task `stop_at`, its state saved to `out`."""
    from tsmeta.simulation import Simulation

    tasks = _tasks_for(tasks_path, params)
    sim = Simulation(tasks, params, SimSettings.from_dict(settings))
    sim.run(checkpoint=out, resume_from=resume_from, stop_at=stop_at, progress=True)
    return Path(out)


def make_theory(tasks_path, params: RunParams, settings: TheorySettings | dict | None, out) -> Path:
    """The theory of a run, for its own algorithm: the ANIL ODE for ANIL and MAML, the FO-ANIL
    ODE for FO-ANIL and FO-MAML (docs/theory.md, section 9; attributes `theory_algorithm`,
    `terms`)."""
    from tsmeta.theory import theory_dataset

    tasks = _tasks_for(tasks_path, params)
    ds = theory_dataset(tasks, params, TheorySettings.coerce(settings))
    return write_netcdf(ds, out)


def make_sweep(sweep: dict, settings: TheorySettings | dict | None, out) -> Path:
    from tsmeta.theory.sweeps import run_sweep

    label = f"theory sweep {Path(out).parent.name}"  # results/experiments/<name>/sweep.nc
    return write_netcdf(run_sweep(sweep, settings, label=label), out)


def group_variants(labels, paths) -> dict[str, list]:
    """{label: paths} from the flat, label-major list of theory-variant files of a rule."""
    labels, paths = list(labels), list(paths)
    per = len(paths) // len(labels) if labels else 0
    return {label: paths[i * per : (i + 1) * per] for i, label in enumerate(labels)}


def make_comparison(
    experiment: str,
    sim_paths,
    theory_paths,
    out,
    variants=None,
    level=FIRST_STAGE_LEVEL,
    alpha_end=None,
) -> Path:
    """compare.nc of an experiment (`analysis.comparison`); variants: {label: theory paths}."""
    from tsmeta.analysis import FULL_THEORY, comparison

    sims = [open_dataset(p, stage="simulate") for p in sim_paths]
    theories = {FULL_THEORY: [open_dataset(p, stage="theory") for p in theory_paths]}
    for label, paths in (variants or {}).items():
        theories[label] = [open_dataset(p, stage="theory") for p in paths]
    ds = comparison(sims, theories, level, alpha_end)
    ds.attrs.update(stage="compare", experiment=experiment)
    return write_netcdf(ds, out)


def make_claims(
    claims: dict, inputs: dict, out_nc, out_md, title: str = "", left_out=None
) -> list[Path]:
    """results/claims.nc and claims.md: every claim (config key `claims`, in its order)
    evaluated on the files of `inputs` ({experiment: {"sims", "theories", "sweeps":
    [paths]}}, `ResultPaths.claim_inputs`); those of `left_out` (name -> reason,
    `Plan.claims_left_out`) as rows that say why they were not evaluated."""
    from tsmeta.claims import Results, claims_dataset, claims_markdown, evaluate_all

    results = Results.from_files(
        {exp: files["sims"] for exp, files in inputs.items()},
        {exp: files["theories"] for exp, files in inputs.items()},
        {exp: files["sweeps"][0] for exp, files in inputs.items() if files["sweeps"]},
    )
    outcomes = evaluate_all(claims, results, left_out)
    for name, o in outcomes.items():
        log.info("claim %s: %s (%s = %.4g)", name, o.verdict, o.statistic, o.value)
    ds = claims_dataset(claims, outcomes)
    ds.attrs.update(stage="claims", title=title)
    write_netcdf(ds, out_nc)
    with atomic_output(out_md) as tmp:
        tmp.write_text(claims_markdown(claims, outcomes, title))
    return [Path(out_nc), Path(out_md)]


def make_figure_data(
    experiment: str,
    figure: dict,
    sim_paths,
    theory_paths,
    out,
    variants=None,
    compare=None,
    sweep=None,
) -> Path:
    """results/figures/<experiment>.nc: every number the experiment's figure draws
    (`tsmeta.figure_data`); figure: the config's figure entry; variants: {label: theory
    paths}; compare, sweep: paths or None."""
    from tsmeta.figure_data import build

    return build(experiment, figure, out, sim_paths, theory_paths, variants, compare, sweep)


def make_figure(data_path, paint_options: dict, outputs) -> list[Path]:
    """The figure painted from its data file (`make_figure_data`): its paint options, and its
    data options as the data file records them."""
    import json

    from tsmeta import figures

    ds = open_dataset(data_path, stage="figure_data")
    figure = {"kind": ds.attrs["kind"]} | json.loads(ds.attrs["data_options"]) | paint_options
    return figures.draw(ds, figure, outputs)


class log_to:
    """The context of a Snakemake job's stage: logging and stderr go to the job's log file;
    progress lines and warnings also to the terminal that runs Snakemake; an input file that
    turns out unreadable is set aside (`io.setting_aside_unreadable_files`), so that running
    the workflow again makes it anew; an error ends the log with its traceback."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = path

    def __enter__(self):
        import sys
        from contextlib import ExitStack

        from tsmeta.io import setting_aside_unreadable_files
        from tsmeta.progress import echo_to

        self._stderr = sys.stderr
        self._stack = ExitStack()
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", buffering=1)  # noqa: SIM115
            sys.stderr = self._fh
            self._stack.enter_context(echo_to(self._stderr))
        self._stack.enter_context(setting_aside_unreadable_files())
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
            force=True,
        )  # fmt: skip
        if self.path:  # warnings (diverged seeds, stopped integrations) on the terminal too
            terminal = logging.StreamHandler(self._stderr)
            terminal.setLevel(logging.WARNING)
            terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(terminal)
        return self

    def __exit__(self, exc_type, exc, tb):
        import sys
        import traceback

        if self.path:
            if exc_type is not None:  # the log shows why the job failed (show-failed-logs)
                traceback.print_exception(exc_type, exc, tb, file=self._fh)
            sys.stderr = self._stderr
            logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True)
            self._fh.close()
        self._stack.close()
        return False
