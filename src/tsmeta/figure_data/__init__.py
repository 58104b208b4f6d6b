"""The data of a figure: every number it draws, computed from its experiment's files.

`tsmeta.figure_data.<kind>.data(inputs, options)` returns a Dataset of the kind's curves, bands,
fits and theory quantities; `build` writes it, with its provenance, to
results/figures/<name>.nc, and `tsmeta.figures.<kind>.paint` draws it without computing
anything. Per-run quantities share the dims (run, record[, k, n]): runs may differ in their
alpha grid and in K and M, so each run's arrays are padded with NaN to the largest and the
Dataset says each run's own sizes (`n_records`, `K`, `M`).

Conventions of every kind: student units are relabelled per seed (`analysis.align_pair`) before
anything is averaged over seeds; lines are means over seeds, bands min-max over seeds; seeds
that diverged are NaN from their divergence on and drop out of every mean.
"""

from __future__ import annotations

import importlib
import itertools
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

import tsmeta
from tsmeta.analysis import align_pair
from tsmeta.figure_kinds import KINDS, is_data_option, option_fields, options_of
from tsmeta.io import open_dataset, params_from_attrs


@dataclass
class FigureInputs:
    """The files of an experiment a figure reads, opened; sims and theories in config order,
    variants {label: theories}, compare its compare.nc, sweep its theory sweep."""

    experiment: str
    sims: list[xr.Dataset]
    theories: list[xr.Dataset]
    variants: dict[str, list[xr.Dataset]] = field(default_factory=dict)
    compare: xr.Dataset | None = None
    sweep: xr.Dataset | None = None


def open_inputs(experiment, sim_paths, theory_paths, variants=None, compare=None, sweep=None):
    """FigureInputs from paths (variants: {label: theory paths}; compare, sweep: a path)."""
    return FigureInputs(
        experiment=experiment,
        sims=[open_dataset(p, stage="simulate") for p in sim_paths],
        theories=[open_dataset(p, stage="theory") for p in theory_paths],
        variants={
            label: [open_dataset(p, stage="theory") for p in paths]
            for label, paths in (variants or {}).items()
        },
        compare=None if compare is None else open_dataset(compare, stage="compare"),
        sweep=None if sweep is None else open_dataset(sweep, stage="theory_sweep"),
    )


def input_records(inputs: FigureInputs, paths: dict) -> list[dict]:
    """Provenance of every input file: its path, stage, run and digest (where it has them)."""
    datasets = {"sims": inputs.sims, "theories": inputs.theories}
    datasets |= {f"variant {label}": ts for label, ts in inputs.variants.items()}
    datasets |= {"compare": [inputs.compare], "sweep": [inputs.sweep]}
    records = []
    for role, files in paths.items():
        for path, ds in zip(files, datasets.get(role, [])):
            keys = ("stage", "run_name", "digest", "params_json")
            records.append({"role": role, "path": str(path)} | {
                k: str(ds.attrs[k]) for k in keys if ds is not None and k in ds.attrs
            })  # fmt: skip
    return records


def compute(kind: str, inputs: FigureInputs, figure: dict) -> xr.Dataset:
    """The kind's data for a config's `figure` entry, with its provenance attributes."""
    options = options_of(figure)
    ds = importlib.import_module(KINDS[kind].data).data(inputs, options)
    fields = option_fields(kind)
    data_options = {k: v for k, v in asdict(options).items() if is_data_option(fields[k])}
    ds.attrs.update(
        stage="figure_data",
        experiment=inputs.experiment,
        kind=kind,
        data_options=json.dumps(data_options, sort_keys=True),
        version_tsmeta=tsmeta.__version__,
        version_xarray=xr.__version__,
        version_numpy=np.__version__,
    )
    return ds


def build(experiment, figure: dict, out, sim_paths, theory_paths, variants=None, compare=None,
          sweep=None) -> Path:  # fmt: skip
    """Write the data of the experiment's figure to `out` (results/figures/<name>.nc)."""
    from tsmeta.io import write_netcdf

    inputs = open_inputs(experiment, sim_paths, theory_paths, variants, compare, sweep)
    kind = (figure or {}).get("kind", "dynamics")
    ds = compute(kind, inputs, figure)
    paths = {"sims": sim_paths, "theories": theory_paths, "compare": [compare], "sweep": [sweep]}
    paths |= {f"variant {label}": ps for label, ps in (variants or {}).items()}
    paths = {role: [p for p in ps if p is not None] for role, ps in paths.items()}
    ds.attrs["inputs"] = json.dumps(input_records(inputs, paths))
    return write_netcdf(ds, out)


# --- shared computations of the kinds ----------------------------------------------------------


def params(ds: xr.Dataset):
    return params_from_attrs(ds.attrs)


def nanmean(values, axis=0) -> np.ndarray:
    """Mean over `axis` ignoring NaN; NaN (no warning) where every value is NaN."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        count = np.isfinite(values).sum(axis=axis)
        total = np.nansum(values, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def seed_band(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, min, max) over seeds (axis 0); quiet where every seed is NaN."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN records: diverged seeds
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    return nanmean(values, 0), lo, hi


def theory_band(values, sd) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the theory's predicted band: every seed's ODE value -/+ its predicted
    finite-N noise sd (`R_sd` ... of theory.nc), min and max over seeds: the spread of the
    per-seed ODEs plus the noise. NaN where the theory has no sd."""
    values = np.asarray(values, dtype=float)
    sd = np.full(values.shape, np.nan) if sd is None else np.asarray(sd, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(values - sd, axis=0), np.nanmax(values + sd, axis=0)


def padded(arrays, fill=np.nan) -> np.ndarray:
    """The arrays stacked along a new first axis, each padded at the end of every axis to the
    largest size (runs differ in their alpha grid, K and M)."""
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    if not arrays:
        return np.zeros((0,))
    shape = tuple(max(a.shape[d] for a in arrays) for d in range(arrays[0].ndim))
    out = np.full((len(arrays),) + shape, fill)
    for i, a in enumerate(arrays):
        out[(i,) + tuple(slice(0, s) for s in a.shape)] = a
    return out


def matched(sims, theories) -> list[xr.Dataset | None]:
    """The theory of each simulation: same run_name, else same position, else None."""
    theories = list(theories or [])
    by_name = {t.attrs.get("run_name"): t for t in theories}
    out = []
    for i, sim in enumerate(sims):
        theory = by_name.get(sim.attrs.get("run_name"))
        if theory is None and len(theories) == len(sims):
            theory = theories[i]
        out.append(theory)
    return out


def self_aligned(ds: xr.Dataset | None) -> xr.Dataset | None:
    """ds with its units relabelled per seed by its own last finite record.

    Used where a label-free quantity (the diagonal overlap) is compared between a simulation
    and its theory: finite-N noise can make a simulation and its theory, started from the same
    overlaps, specialise onto a different permutation or sign, so the simulation's relabelling
    need not fit its theory at the end.
    """
    return None if ds is None else align_pair(ds, None)[0]


def diag_overlap(ds: xr.Dataset) -> np.ndarray:
    """Mean over k < min(K, M) of R_kk (seed, alpha): the overlap with the meta-teacher after
    relabelling (ds must already be aligned)."""
    R = ds["R"].values
    d = min(R.shape[-2], R.shape[-1])
    return nanmean(np.stack([R[..., k, k] for k in range(d)]), 0)


def diverged_count(sim: xr.Dataset) -> int:
    return int(np.nansum(sim["diverged"].values)) if "diverged" in sim else 0


def end_growth_rate(theory: xr.Dataset | None) -> float:
    """Median over seeds of the theory's growth rate at its last record (`growth_rate_end`,
    docs/theory.md section 13); NaN without it (a theory file written before it existed)."""
    if theory is None or "growth_rate_end" not in theory:
        return np.nan
    rates = theory["growth_rate_end"].values
    return float(np.nanmedian(rates)) if np.isfinite(rates).any() else np.nan


def run_label(sim: xr.Dataset) -> str:
    p = params(sim)
    parts = [f"{p.algorithm.upper()}", f"K={p.K}", f"M={p.M}", f"N={p.N}"]
    parts += [rf"$\eta_J$={p.eta_J:g}", rf"$\eta_w$={p.eta_w:g}"]
    if p.init != "random":
        parts.append(f"init={p.init}")
    if p.gamma != 1:
        parts.append(rf"$\gamma$={p.gamma:g}")
    parts.append(f"{p.seeds} seeds")
    return ", ".join(parts)


def compare_window(compare: xr.Dataset | None) -> tuple[float, float | None]:
    """(level, fixed end or None) of the first-stage window compare.nc was measured on (the
    experiment's `compare` key)."""
    if compare is None:
        from tsmeta.params import DEFAULT_LEVELS

        return DEFAULT_LEVELS[0], None
    end = compare.attrs.get("first_stage_alpha", "none")
    return float(compare.attrs["first_stage_level"]), None if end == "none" else float(end)


def described(ds: xr.Dataset, names: dict) -> xr.Dataset:
    """ds with the `long_name` and `units` of its variables: names {variable: long name, or
    (long name, units)}; units "1" where not given."""
    for name, text in names.items():
        long_name, units = (text, "1") if isinstance(text, str) else text
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    return ds


def run_dataset(per_run: dict, runs: list[str]) -> xr.Dataset:
    """A Dataset of per-run arrays {name: (dims after 'run', [array per run])}, padded."""
    ds = xr.Dataset(coords={"run": runs})
    for name, (dims, arrays) in per_run.items():
        if arrays and isinstance(arrays[0], str):
            ds[name] = ("run", list(arrays))
        else:
            ds[name] = (("run",) + tuple(dims), padded(arrays))
    return ds


# --- labels, axes and theory sweeps -------------------------------------------------------------

TEX = {"eta_J": r"\eta_J", "eta_w": r"\eta_w", "gamma": r"\gamma"}


def alpha_axis(alpha: np.ndarray, xscale: str) -> np.ndarray:
    """alpha as plotted: alpha = 0 has no place on a log axis (NaN there)."""
    x = np.asarray(alpha, dtype=float).copy()
    if xscale == "log":
        x[x <= 0] = np.nan
    return x


def diverged_note(diverged, seeds) -> str:
    """' (n/seeds diverged)' for a legend entry, '' where no seed diverged."""
    n = int(diverged)
    return f" ({n}/{int(seeds)} diverged)" if n else ""


def diverged_suffix(sim: xr.Dataset) -> str:
    return diverged_note(diverged_count(sim), sim.sizes["seed"])


def sim_reached(sim: xr.Dataset, level: float) -> bool:
    """Whether the simulation's eps_meta, mean over seeds, fell below level by alpha_final."""
    from tsmeta.analysis import first_crossing

    eps = nanmean(sim["eps_meta"].values, 0)
    return bool(np.isfinite(first_crossing(eps, sim["alpha"].values, level)))


# --- theory sweeps ------------------------------------------------------------------------


def required_sweep(ds: xr.Dataset | None) -> xr.Dataset:
    """The theory sweep a figure is drawn from (`theory.sweeps.run_sweep`)."""
    if ds is None:
        raise ValueError("this figure needs a theory sweep (experiment key `theory_sweep`)")
    return ds


def sweep_levels(ds: xr.Dataset, thresholds) -> list[float]:
    """The levels of `thresholds` that the sweep recorded (all of the sweep's if none)."""
    have = [float(v) for v in ds["level"].values]
    wanted = thresholds or have
    levels = [h for w in wanted for h in have if np.isclose(w, h)]
    return levels or have


def combos(da: xr.DataArray, skip) -> list[dict]:
    """Every combination of the values of the dims of `da` not in `skip`."""
    dims = [d for d in da.dims if d not in skip]
    values = [list(da[d].values) for d in dims]
    return [dict(zip(dims, v)) for v in itertools.product(*values)] or [{}]


def selection_label(sel: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel.items())
