"""Simulation against theory: relabelled deviations per seed and record, and their RMS on
the first stage, for every run of an experiment and every theory variant (compare.nc)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta.analysis.crossings import first_stage_end
from tsmeta.analysis.relabel import align_pair
from tsmeta.params import FIRST_STAGE_LEVEL

COMPARED = ("eps_meta", "R", "Q", "w0")
FULL_THEORY = "full"  # the label of the run's own theory in a comparison
STAGE_KEYS = ("R", "Q", "log_eps", "alpha_end")  # a row of first-stage RMS and its window


def _common(sim: xr.Dataset, theory: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    seeds = np.intersect1d(sim["seed"].values, theory["seed"].values)
    alphas = np.intersect1d(sim["alpha"].values, theory["alpha"].values)
    if not len(seeds) or not len(alphas):
        raise ValueError("simulation and theory share no seed or no alpha record")
    sel = {"seed": seeds, "alpha": alphas}
    return sim.sel(sel), theory.sel(sel)


def _rms(diff: np.ndarray) -> float:
    diff = np.asarray(diff, dtype=float)
    finite = np.isfinite(diff)
    if not finite.any():
        return float("nan")
    return float(np.sqrt(np.mean(diff[finite] ** 2)))


def stage_deviation(
    sim: xr.Dataset,
    theory: xr.Dataset,
    level: float = FIRST_STAGE_LEVEL,
    alpha_end: float | None = None,
) -> dict:
    """RMS of simulation minus theory on the first stage, for R, Q and log10 eps_meta.

    The first stage is 0 < alpha <= first_stage_end(theory eps_meta, level) (the whole run
    if the theory never reaches the level; alpha = 0 is left out, where both start from the
    same overlaps); `alpha_end`, if given, replaces that end (e.g. to compare two theory
    variants on the same window). Student units are relabelled per seed
    (align_pair, the same permutation and signs for the simulation and its
    theory; the RMS does not depend on it). The RMS runs over seeds,
    alphas and matrix entries; non-finite entries (diverged seeds) are left out.
    Returns {"R", "Q", "log_eps", "alpha_end", "n_records"}.
    """
    sim, theory = _common(sim, theory)
    sim, theory = align_pair(sim, theory)
    alpha = sim["alpha"].values
    if alpha_end is None:
        alpha_end = first_stage_end(theory["eps_meta"].values, alpha, level)
    end = float(alpha_end)
    window = (alpha > 0) & (alpha <= (end if np.isfinite(end) else alpha[-1]))
    out = {"alpha_end": end, "n_records": int(window.sum())}
    for name in ("R", "Q"):
        out[name] = _rms(sim[name].values[:, window] - theory[name].values[:, window])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_diff = np.log10(sim["eps_meta"].values[:, window]) - np.log10(
            theory["eps_meta"].values[:, window]
        )
    out["log_eps"] = _rms(log_diff)
    return out


def deviations(sim: xr.Dataset, theory: xr.Dataset) -> xr.Dataset:
    """Simulation minus theory per seed and record, units relabelled per seed (`align_pair`)
    on the common seeds and alphas, for eps_meta, R, Q, w0 and log10 eps_meta."""
    sim, theory = align_pair(*_common(sim, theory))
    out = xr.Dataset()
    for name in COMPARED:
        out[f"dev_{name}"] = sim[name] - theory[name]
        out[f"dev_{name}"].attrs["long_name"] = f"{name}: simulation minus theory"
    with np.errstate(divide="ignore", invalid="ignore"):
        out["dev_log_eps_meta"] = np.log10(sim["eps_meta"]) - np.log10(theory["eps_meta"])
    out["dev_log_eps_meta"].attrs["long_name"] = "log10 eps_meta: simulation minus theory"
    return out


def comparison(
    sims,
    theories: dict[str, list],
    level: float = FIRST_STAGE_LEVEL,
    alpha_end: float | None = None,
) -> xr.Dataset:
    """The comparison stage: every run's simulation against its theory and theory variants.

    sims: simulation Datasets; theories: {label: theory Datasets}, the run's own theory under
    FULL_THEORY, variants (e.g. without the finite-V term) under their labels; each list is
    matched to the sims by run_name. Returns, with dims run and theory (the labels):
    dev_<name> (run, theory, seed, alpha, ...) and their means over seeds, relabelled
    (`deviations`), and the first-stage RMS rms_R, rms_Q, rms_log_eps with the window
    alpha_end and n_records (run, theory) (`stage_deviation`). Every variant of a run is
    measured on the window of its full theory (or up to `alpha_end` if given); a stochastic
    variant (kind sde, dim realisation) through its first realisation.
    """
    runs = []
    for sim in sims:
        name = sim.attrs["run_name"]
        own = {
            label: next((t for t in ts if t.attrs.get("run_name") == name), None)
            for label, ts in theories.items()
        }
        full = own.get(FULL_THEORY)
        if full is None:
            raise ValueError(f"comparison: no {FULL_THEORY!r} theory for run {name}")
        end = alpha_end
        if end is None:
            end = first_stage_end(full["eps_meta"].values, full["alpha"].values, level)
        parts = []
        for label, theory in own.items():
            if theory is None:
                continue
            if "realisation" in theory.dims:  # a stochastic theory: its first noise path
                theory = theory.isel(realisation=0)
            dev = deviations(sim, theory)
            stage = stage_deviation(sim, theory, level, alpha_end=end)
            for key in ("R", "Q", "log_eps"):
                dev[f"rms_{key}"] = stage[key]
            dev["alpha_end"], dev["n_records"] = stage["alpha_end"], stage["n_records"]
            parts.append(dev.expand_dims(theory=[label]))
        runs.append(xr.concat(parts, dim="theory").expand_dims(run=[name]))
    ds = xr.concat(runs, dim="run", join="outer", combine_attrs="drop")
    for name in COMPARED + ("log_eps_meta",):
        ds[f"dev_{name}_mean"] = ds[f"dev_{name}"].mean("seed")
    ds["rms_R"].attrs["long_name"] = "RMS of R: simulation minus theory on the first stage"
    ds["rms_Q"].attrs["long_name"] = "RMS of Q: simulation minus theory on the first stage"
    ds["rms_log_eps"].attrs["long_name"] = "RMS of log10 eps_meta on the first stage"
    ds["alpha_end"].attrs["long_name"] = "end of the first-stage window"
    ds.attrs.update(
        first_stage_level=float(level),
        first_stage_alpha="none" if alpha_end is None else float(alpha_end),
        description=(
            "simulation minus theory on the common alpha grid, per run, theory variant and "
            "seed, student units relabelled per seed; first-stage RMS per run and variant"
        ),
    )
    return ds


def comparison_row(compare: xr.Dataset | None, run: str, theory: str = FULL_THEORY) -> dict:
    """First-stage RMS of one run against one theory from a comparison, as stage_deviation
    returns it (NaN where there is no comparison or the run has no such theory)."""
    known = compare is not None and run in compare["run"].values
    if not known or theory not in compare["theory"].values:
        return dict.fromkeys(STAGE_KEYS, np.nan)
    row = compare.sel(run=run, theory=theory)
    out = {key: float(row[f"rms_{key}"]) for key in ("R", "Q", "log_eps")}
    out["alpha_end"] = float(row["alpha_end"])
    return out
