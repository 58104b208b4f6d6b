"""Data of the over-parameterisation figure (K > M): eps_meta per run (simulation band,
theory mean), the final |R_kn| (mean over seeds after relabelling) and the arrangements the
seeds found."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.analysis import align_pair, last_finite
from tsmeta.figure_data import (
    FigureInputs,
    diverged_count,
    matched,
    nanmean,
    params,
    run_dataset,
    seed_band,
)


def mean_final_abs_R(sim: xr.Dataset) -> np.ndarray:
    aligned, _ = align_pair(sim, None)
    return nanmean(np.abs(last_finite(aligned["R"].values)), 0)  # (K, M)


def arrangement_summary(found) -> str:
    """'2-1-1 ×3' style lines, most frequent arrangement first (counts are seeds)."""
    if not found:
        return "no data"
    return "\n".join(f"{label} ×{count}" for label, count in found.most_common())


def run_row(sim: xr.Dataset, theory: xr.Dataset | None, threshold: float) -> dict:
    p = params(sim)
    alpha = sim["alpha"].values
    row = {"alpha": alpha, "n_records": len(alpha), "K": p.K, "M": p.M}
    row |= {"eta_J": p.eta_J, "eta_w": p.eta_w}
    row["eps_mean"], row["eps_lo"], row["eps_hi"] = seed_band(sim["eps_meta"].values)
    row["has_theory"] = theory is not None
    row["eps_theory"] = (
        np.full(len(alpha), np.nan) if theory is None else nanmean(theory["eps_meta"].values, 0)
    )
    row["final_abs_R"] = mean_final_abs_R(sim)
    row["arrangements"] = arrangement_summary(analysis.run_arrangements(sim, threshold))
    row["diverged"], row["seeds"] = diverged_count(sim), sim.sizes["seed"]
    return row


DIMS = {
    "alpha": ("record",), "eps_mean": ("record",), "eps_lo": ("record",), "eps_hi": ("record",),
    "eps_theory": ("record",), "final_abs_R": ("k", "n"), "n_records": (), "K": (), "M": (),
    "eta_J": (), "eta_w": (), "has_theory": (), "arrangements": (), "diverged": (), "seeds": (),
}  # fmt: skip


def data(inputs: FigureInputs, options) -> xr.Dataset:
    theories = matched(inputs.sims, inputs.theories)
    rows = [
        run_row(sim, theory, options.arrangement_threshold)
        for sim, theory in zip(inputs.sims, theories)
    ]
    runs = [sim.attrs["run_name"] for sim in inputs.sims]
    return run_dataset({name: (dims, [r[name] for r in rows]) for name, dims in DIMS.items()}, runs)
