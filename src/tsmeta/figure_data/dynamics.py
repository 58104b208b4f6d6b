"""Data of the dynamics figure: per run, eps_meta, R_kn and Q_kl against alpha (simulation
bands, theory means), the first crossings of the marked levels and the seeds whose simulation
and theory specialised onto different teacher units.

Student units are relabelled per seed before averaging: units that end on the same teacher
unit in different seeds carry different labels (the specialisation breaks the permutation
symmetry at random), so each seed's units are permuted, and their signs flipped (g is odd),
so that student k ends aligned with teacher k (Hungarian assignment on |R| at the last
record). The simulation and the theory of a seed are each relabelled by their own last
record: which unit ends on which teacher is decided by small differences between the units,
in the simulation by the finite-N noise of the task stream as well, in the deterministic
theory only by the initial differences. From the nearly symmetric start (units identical up
to `init_perturbation`) the two can end on different assignments; relabelling the theory
with the simulation's assignment would then mix different units into one curve.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta.activations import activation
from tsmeta.analysis import first_crossing, last_finite, specialised_alignment
from tsmeta.figure_data import (
    FigureInputs,
    diverged_count,
    end_growth_rate,
    nanmean,
    params,
    run_dataset,
    run_label,
    seed_band,
    self_aligned,
    theory_band,
)


def assignments_differ(sim: xr.Dataset, theory: xr.Dataset | None) -> int:
    """Seeds whose simulation and theory both specialised, onto different teacher units (or
    with other signs): `analysis.alignment` of each one's last finite record."""
    if theory is None:
        return 0
    odd = activation(params(sim).activation).odd
    differ = 0
    for a, b in zip(last_finite(sim["R"].values), last_finite(theory["R"].values)):
        a, b = specialised_alignment(a, odd), specialised_alignment(b, odd)
        differ += a is not None and b is not None and a != b
    return differ


def pair_curves(sim, theory, key, pairs) -> dict:
    """Band of the simulation, mean and band (`theory_band`) of the theory of
    ds[key][:, :, k, l] per (k, l) of `pairs`, as (alpha, K, K-or-M) arrays (NaN elsewhere)."""
    shape = (sim.sizes["alpha"],) + sim[key].shape[2:]
    out = {name: np.full(shape, np.nan) for name in BAND_NAMES}
    for k, l in pairs:
        out["mean"][:, k, l], out["lo"][:, k, l], out["hi"][:, k, l] = seed_band(
            sim[key].values[:, :, k, l]
        )
        if theory is not None:
            out["theory"][:, k, l] = nanmean(theory[key].values[:, :, k, l], 0)
            sd = theory[f"{key}_sd"].values[:, :, k, l] if f"{key}_sd" in theory else None
            lo, hi = theory_band(theory[key].values[:, :, k, l], sd)
            out["theory_lo"][:, k, l], out["theory_hi"][:, k, l] = lo, hi
    return out


def run_curves(sim: xr.Dataset, theory: xr.Dataset | None, thresholds) -> dict:
    """Every number of one run's row."""
    differ = assignments_differ(sim, theory)
    sim, theory = self_aligned(sim), self_aligned(theory)
    alpha = sim["alpha"].values
    K, M = sim.sizes["k"], sim.sizes["n"]
    row = {"alpha": alpha, "differ": differ, "K": K, "M": M, "n_records": len(alpha)}
    row["eps_mean"], row["eps_lo"], row["eps_hi"] = seed_band(sim["eps_meta"].values)
    mc = sim["eps_meta_mc"].values
    with np.errstate(all="ignore"):
        row["eps_mc_err"] = np.sqrt(np.nansum(sim["eps_meta_mc_err"].values ** 2, 0)) / mc.shape[0]
    row["eps_mc"] = nanmean(mc, 0)
    eps_sim = nanmean(sim["eps_meta"].values, 0)
    eps_th = np.full(len(alpha), np.nan)
    row["eps_theory_lo"], row["eps_theory_hi"] = eps_th.copy(), eps_th.copy()
    if theory is not None:
        eps_th = nanmean(theory["eps_meta"].values, 0)
        sd = theory["eps_meta_sd"].values if "eps_meta_sd" in theory else None
        row["eps_theory_lo"], row["eps_theory_hi"] = theory_band(theory["eps_meta"].values, sd)
    row["eps_theory"] = eps_th
    row["crossing_sim"] = [first_crossing(eps_sim, alpha, level) for level in thresholds]
    row["crossing_theory"] = [
        first_crossing(eps_th, alpha, level) if theory is not None else np.nan
        for level in thresholds
    ]
    R = pair_curves(sim, theory, "R", [(k, n) for k in range(K) for n in range(M)])
    Q = pair_curves(sim, theory, "Q", [(k, l) for k in range(K) for l in range(k, K)])
    row |= {f"R_{name}": v for name, v in R.items()} | {f"Q_{name}": v for name, v in Q.items()}
    row["has_theory"] = theory is not None
    row["growth_rate_end"] = end_growth_rate(theory)
    row["diverged"] = diverged_count(sim)
    row["seeds"] = sim.sizes["seed"]
    row["label"] = run_label(sim)
    p = params(sim)
    row["symmetric"] = p.init == "symmetric"
    row["init_perturbation"] = p.init_perturbation
    return row


BAND_NAMES = ("mean", "lo", "hi", "theory", "theory_lo", "theory_hi")
DIMS = {
    "alpha": ("record",), "eps_mean": ("record",), "eps_lo": ("record",),
    "eps_hi": ("record",), "eps_mc": ("record",), "eps_mc_err": ("record",),
    "eps_theory": ("record",), "eps_theory_lo": ("record",), "eps_theory_hi": ("record",),
    "crossing_sim": ("level",), "crossing_theory": ("level",),
    **{f"R_{n}": ("record", "k", "n") for n in BAND_NAMES},
    **{f"Q_{n}": ("record", "k", "l") for n in BAND_NAMES},
    "differ": (), "K": (), "M": (), "n_records": (), "has_theory": (), "diverged": (),
    "growth_rate_end": (), "seeds": (), "label": (), "symmetric": (), "init_perturbation": (),
}  # fmt: skip


def data(inputs: FigureInputs, options) -> xr.Dataset:
    thresholds = list(options.thresholds)
    by_name = {t.attrs["run_name"]: t for t in inputs.theories}
    rows = [run_curves(sim, by_name.get(sim.attrs["run_name"]), thresholds) for sim in inputs.sims]
    runs = [sim.attrs["run_name"] for sim in inputs.sims]
    ds = run_dataset({name: (dims, [r[name] for r in rows]) for name, dims in DIMS.items()}, runs)
    return ds.assign_coords(level=thresholds)
