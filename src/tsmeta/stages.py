"""The workflow stages as plain functions of paths: used by the Snakemake scripts and the CLI.

tasks -> simulate -> theory -> compare -> figure. Each stage reads netCDF files, writes one
output atomically, and can run without Snakemake.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import xarray as xr

from tsmeta.io import open_dataset, params_from_attrs, write_netcdf
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings, TheorySettings

log = logging.getLogger(__name__)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def make_tasks(params: RunParams, out: str | os.PathLike) -> Path:
    from tsmeta.tasks import initial_state

    return write_netcdf(initial_state(params), out)


def _tasks_for(path, params: RunParams) -> xr.Dataset:
    tasks = open_dataset(path, stage="tasks", required=("B", "J", "w0", "R0", "Q0", "T"))
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
) -> Path:
    from tsmeta.simulation import simulate

    tasks = _tasks_for(tasks_path, params)
    if not isinstance(settings, SimSettings):
        settings = SimSettings.from_dict(settings)
    ds = simulate(tasks, params, settings, checkpoint=checkpoint, progress=progress)
    path = write_netcdf(ds, out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return path


def make_theory(tasks_path, params: RunParams, settings: TheorySettings | dict | None, out) -> Path:
    """The FO-ANIL theory of a run; for ANIL, MAML, FO-MAML runs the FO-ANIL theory at the
    same parameters (attribute `theory_algorithm`), which is what the paper compares with."""
    from tsmeta.io import params_to_attrs
    from tsmeta.theory import theory_dataset

    tasks = _tasks_for(tasks_path, params)
    ds = theory_dataset(
        tasks, dataclasses.replace(params, algorithm="fo-anil"), TheorySettings.coerce(settings)
    )
    ds.attrs.update(params_to_attrs(params), theory_algorithm="fo-anil")
    return write_netcdf(ds, out)


def make_sweep(sweep: dict, settings: TheorySettings | dict | None, out) -> Path:
    from tsmeta.theory.sweeps import run_sweep

    return write_netcdf(run_sweep(sweep, settings), out)


def group_variants(labels, paths) -> dict[str, list]:
    """{label: paths} from the flat, label-major list of theory-variant files of a rule."""
    labels, paths = list(labels), list(paths)
    per = len(paths) // len(labels) if labels else 0
    return {label: paths[i * per : (i + 1) * per] for i, label in enumerate(labels)}


def make_comparison(
    experiment: str, sim_paths, theory_paths, out, variants=None, level=0.01, alpha_end=None
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


def make_figure(
    experiment: str,
    options: dict,
    sim_paths,
    theory_paths,
    outputs,
    variants=None,
    compare=None,
    sweep=None,
) -> list[Path]:
    """The figure of an experiment; variants: {label: theory paths}; compare, sweep: paths."""
    from tsmeta import figures

    sims = [open_dataset(p, stage="simulate") for p in sim_paths]
    theories = [open_dataset(p, stage="theory") for p in theory_paths]
    extra = {
        "variants": {
            label: [open_dataset(p, stage="theory") for p in paths]
            for label, paths in (variants or {}).items()
        }
    }
    if compare is not None:
        extra["compare"] = open_dataset(compare, stage="compare")
    if sweep is not None:
        extra["sweep"] = open_dataset(sweep, stage="theory_sweep")
    return figures.draw(experiment, options, sims, theories, outputs, extra)


class log_to:
    """Send logging and stderr (progress lines) of a stage to a Snakemake log file."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = path

    def __enter__(self):
        import sys

        self._stderr = sys.stderr
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", buffering=1)  # noqa: SIM115
            sys.stderr = self._fh
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
            force=True,
        )  # fmt: skip
        return self

    def __exit__(self, *exc):
        import sys

        if self.path:
            sys.stderr = self._stderr
            self._fh.close()
        return False
