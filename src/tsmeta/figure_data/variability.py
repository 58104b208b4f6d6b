"""Data of the task-variability figure: eps_meta and the overlap with the meta-teacher per
gamma (simulation bands, theory means), and the error floor of every run (per seed: mean,
min, max; theory: mean)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.figure_data import (
    FigureInputs,
    diag_overlap,
    diverged_count,
    matched,
    nanmean,
    params,
    run_dataset,
    seed_band,
    self_aligned,
)


def floor_stats(floors) -> tuple[float, float, float]:
    """(mean, min, max) of the per-seed floors; NaN where none is finite."""
    f = np.atleast_1d(floors)
    lo = np.nanmin(f) if np.isfinite(f).any() else np.nan
    hi = np.nanmax(f) if np.isfinite(f).any() else np.nan
    return nanmean(f), lo, hi


def run_row(sim: xr.Dataset, theory: xr.Dataset | None, window: float) -> dict:
    sim_al, th_al = self_aligned(sim), self_aligned(theory)
    alpha = sim["alpha"].values
    row = {"alpha": alpha, "n_records": len(alpha), "gamma": params(sim).gamma}
    row["eps_mean"], row["eps_lo"], row["eps_hi"] = seed_band(sim["eps_meta"].values)
    row["overlap_mean"], row["overlap_lo"], row["overlap_hi"] = seed_band(diag_overlap(sim_al))
    none = np.full(len(alpha), np.nan)
    row["eps_theory"] = none if theory is None else nanmean(theory["eps_meta"].values, 0)
    row["overlap_theory"] = none if th_al is None else nanmean(diag_overlap(th_al), 0)
    row["has_theory"] = theory is not None
    floors = analysis.error_floor(sim["eps_meta"].values, alpha, window)
    row["floor_mean"], row["floor_lo"], row["floor_hi"] = floor_stats(floors)
    floors_th = (
        analysis.error_floor(theory["eps_meta"].values, theory["alpha"].values, window)
        if theory is not None
        else np.full(1, np.nan)
    )
    row["floor_theory"] = nanmean(np.atleast_1d(floors_th))
    row["diverged"], row["seeds"] = diverged_count(sim), sim.sizes["seed"]
    return row


DIMS = {
    **{name: ("record",) for name in (
        "alpha", "eps_mean", "eps_lo", "eps_hi", "overlap_mean", "overlap_lo", "overlap_hi",
        "eps_theory", "overlap_theory")},
    **{name: () for name in (
        "n_records", "gamma", "has_theory", "floor_mean", "floor_lo", "floor_hi",
        "floor_theory", "diverged", "seeds")},
}  # fmt: skip


def data(inputs: FigureInputs, options) -> xr.Dataset:
    theories = matched(inputs.sims, inputs.theories)
    rows = [run_row(s, t, options.floor_window) for s, t in zip(inputs.sims, theories)]
    runs = [sim.attrs["run_name"] for sim in inputs.sims]
    ds = run_dataset({name: (dims, [r[name] for r in rows]) for name, dims in DIMS.items()}, runs)
    ds.attrs["floor_window"] = float(options.floor_window)
    return ds
