"""activations: what the figure draws (`figures.activations` paints it).

Per run (config order, dim `run`; runs differ in the activation g and in (K, M)): eps_meta,
the overlap with the meta-teacher and the norm of the student units against alpha, seed means
with min-max bands and the theory from each seed's own initial overlaps. The overlap is what
the symmetry of g leaves meaningful (docs/theory.md, section 12): for erf and relu the mean
matched R_kk after relabelling per seed (sign flips for erf, permutations only and the signed
R for relu), for linear, where every rotation of the units is a symmetry, the mean squared
cosine of the principal angles between the student and the teacher subspaces
(`analysis.subspace_cosines`). The norm is the mean Q_kk.

The escape panel: per run the theory's escape rate from its first plateau
(`theory.stability.escape_rate` at P = V = infinity: at R = 0 for erf and linear, at the
symmetric fixed point for relu) against eta_J eta_w u_std^2 gamma^2 / (K M), with the growth
rates measured on the simulation and on its ODE solution by the same estimator: the early
growth of rms R for g with <g> = 0 (`analysis.early_growth_rate`), the growth of the
symmetry-breaking part rms(R - mean R) on the plateau for relu (`analysis.plateau_growth_rate`,
from the alpha at which the ODE's mean R is within `plateau_tolerance` of the plateau).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.activations import ACTIVATION_NAMES, activation
from tsmeta.figure_data import (
    alpha_axis,
    diverged_suffix,
    end_growth_rate,
    matched,
    nanmean,
    padded,
    params,
    seed_band,
    self_aligned,
)
from tsmeta.theory.stability import escape_rate, symmetric_fixed_point

P_INFINITY = {"finite_p": False, "finite_v": False}  # escape rates: the drift linear in eta_J


def overlap_curve(ds: xr.Dataset | None) -> np.ndarray | None:
    """(seed, alpha): mean matched R_kk after relabelling (odd g or relu), or the mean squared
    cosine of the principal angles (linear: rotation-invariant)."""
    if ds is None:
        return None
    name = analysis.run_activation(ds)
    if name == "linear":
        R = ds["R"].transpose("seed", "alpha", ...).values
        T = ds["T"].transpose("seed", ...).values if "T" in ds else np.eye(R.shape[-1])
        T = np.broadcast_to(T[..., None, :, :] if T.ndim == 3 else T, R.shape[:2] + T.shape[-2:])
        cos2 = analysis.subspace_cosines(R, ds["Q"].transpose("seed", "alpha", ...).values, T)
        return nanmean(np.moveaxis(cos2, -1, 0), 0)
    R = self_aligned(ds)["R"].values
    d = min(R.shape[-2:])
    return nanmean(np.stack([R[..., k, k] for k in range(d)]), 0)


def norm_curve(ds: xr.Dataset | None) -> np.ndarray | None:
    """(seed, alpha): mean over k of Q_kk."""
    if ds is None:
        return None
    return nanmean(np.moveaxis(np.diagonal(ds["Q"].values, axis1=-2, axis2=-1), -1, 0), 0)


def growth(ds: xr.Dataset | None, p, start: float, options) -> np.ndarray:
    """Per seed, the measured escape rate of ds (see the module doc); NaN where none."""
    if ds is None:
        return np.array([np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # seeds without a finite rate: NaN
        if activation(p.activation).mean != 0.0:
            return analysis.plateau_growth_rate(ds, start, options.plateau_growth).values
        return analysis.early_growth_rate(ds, options.growth_alpha_max, options.growth_max).values


def plateau_start(theory: xr.Dataset | None, p, tolerance: float) -> tuple[float, dict]:
    """The alpha at which the ODE's seed-mean mean R first comes within `tolerance` (relative)
    of the symmetric plateau r* of the run's default theory (finite P and V included: they
    move the plateau), and the plateau; (0, {}) where g has <g> = 0."""
    if activation(p.activation).mean == 0.0:
        return 0.0, {}
    point = symmetric_fixed_point(p)
    if theory is None or not np.isfinite(point["r"]):
        return np.nan, point
    mean_R = nanmean(theory["R"].values.reshape(theory.sizes["seed"], theory.sizes["alpha"], -1)
                     .mean(-1), 0)  # fmt: skip
    near = np.flatnonzero(np.abs(mean_R - point["r"]) <= tolerance * abs(point["r"]))
    return (float(theory["alpha"].values[near[0]]) if len(near) else np.nan), point


def _run_row(sim, theory, options) -> dict:
    p = params(sim)
    row = {"label": f"{p.activation}{diverged_suffix(sim)}", "activation": p.activation}
    row["alpha"] = sim["alpha"].values
    row["x"] = alpha_axis(sim["alpha"].values, options.xscale)
    for name, values in (("eps", sim["eps_meta"].values), ("overlap", overlap_curve(sim)),
                         ("norm", norm_curve(sim))):  # fmt: skip
        row[name] = np.stack(seed_band(values))
    if theory is not None:
        row["x_theory"] = alpha_axis(theory["alpha"].values, options.xscale)
        row["eps_theory"] = nanmean(theory["eps_meta"].values, 0)
        row["overlap_theory"] = nanmean(overlap_curve(theory), 0)
        row["norm_theory"] = nanmean(norm_curve(theory), 0)
    start, point = plateau_start(theory, p, options.plateau_tolerance)
    p_inf = dataclasses.replace(p, u_mean=0.0)
    row["escape_theory"] = float(escape_rate(p_inf, P_INFINITY))
    row["escape_x"] = p.eta_J * p.eta_w * p.u_std**2 * p.gamma**2 / (p.K * p.M)
    sim_rates = growth(sim, p, start, options)
    ode_rates = growth(theory, p, start, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row["escape_sim"] = np.array(
            [np.nanmean(sim_rates), np.nanmin(sim_rates), np.nanmax(sim_rates)]
        )
        row["escape_ode"] = float(np.nanmean(ode_rates))
    row["plateau_start"] = start
    row["growth_rate_end"] = end_growth_rate(theory)
    row["plateau_R"] = point.get("r", np.nan)
    row["plateau_eps"] = point.get("eps", np.nan)
    row.update(K=p.K, M=p.M, eta_J=p.eta_J, eta_w=p.eta_w, N=p.N, seeds=p.seeds)
    return row


CURVES = ("eps", "overlap", "norm")
SCALARS = ("escape_theory", "escape_x", "escape_ode", "plateau_start", "plateau_R",
           "plateau_eps", "growth_rate_end", "K", "M", "eta_J", "eta_w", "N",
           "seeds")  # fmt: skip


def data(inputs, options) -> xr.Dataset:
    """Everything the activations figure draws, for `figures.activations.paint`."""
    sims = list(inputs.sims)
    rows = [_run_row(s, t, options) for s, t in zip(sims, matched(sims, inputs.theories))]
    values = {
        "label": ("run", np.array([r["label"] for r in rows], dtype=str)),
        "activation": ("run", np.array([r["activation"] for r in rows], dtype=str)),
        "activation_index": ("run", np.array([ACTIVATION_NAMES.index(r["activation"])
                                               for r in rows], dtype=int)),  # fmt: skip
        "alpha": (("run", "record"), padded([r["alpha"] for r in rows])),
        "x": (("run", "record"), padded([r["x"] for r in rows])),
        "x_theory": (("run", "theory_record"),
                     padded([r.get("x_theory", np.array([np.nan])) for r in rows])),
        "escape_sim": (("run", "stat"), padded([r["escape_sim"] for r in rows])),
    }  # fmt: skip
    for name in CURVES:
        values[name] = (("run", "stat", "record"), padded([r[name] for r in rows]))
        values[name + "_theory"] = (
            ("run", "theory_record"),
            padded([r.get(name + "_theory", np.array([np.nan])) for r in rows]),
        )
    for name in SCALARS:
        values[name] = ("run", np.array([r[name] for r in rows], dtype=float))
    ds = xr.Dataset(values, coords={"stat": ["mean", "min", "max"]})
    ds.attrs.update(
        experiment=inputs.experiment,
        xscale=options.xscale,
        n_activations=len(ACTIVATION_NAMES),
        note="Lines: mean over seeds, bands: min-max; dashed: theory from each seed's own "
        "initial overlaps. Overlap: mean matched R_kk after relabelling (erf: signs and "
        "permutations; relu: permutations, signed R), for linear the mean squared cosine of "
        "the principal angles between student and teacher subspaces. Escape: theory rate "
        "(P = V = infinity; relu at its symmetric plateau, marked on the R panel) against "
        "eta_J eta_w / (K M); filled: growth rate measured on the simulation (mean, min-max "
        "over seeds), open: the same estimator on the ODE solution.",
    )
    for name, (long_name, units) in UNITS.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    return ds


UNITS = {
    "alpha": ("alpha = t/N", "1"),
    "eps": ("eps_meta: mean, min, max over seeds", "1"),
    "overlap": ("mean matched R_kk, or (linear) mean cos^2 of the principal angles", "1"),
    "norm": ("mean Q_kk", "1"),
    "escape_theory": ("escape rate from the first plateau, theory", "1/alpha"),
    "escape_x": ("eta_J eta_w u_std^2 gamma^2 / (K M)", "1"),
    "escape_sim": ("measured growth rate, simulation: mean, min, max over seeds", "1/alpha"),
    "escape_ode": ("measured growth rate on the ODE solution, mean over seeds", "1/alpha"),
    "plateau_start": ("alpha at which the ODE reaches the symmetric plateau (relu)", "1"),
    "plateau_R": ("R at the symmetric plateau (relu)", "1"),
    "growth_rate_end": ("theory's growth rate at its end state, median over seeds", "1/alpha"),
}
