"""Data of the finite-size figure: eps_meta per N (simulation band, theory mean); the
first-stage deviations of simulation from theory against N (from compare.nc) with power-law
fits; the escape of the second stage: its deviation from the theory seed by seed and its spread
over seeds against N, with fits (docs/simulation.md: the Gram sampler makes N up to 1e5-1e6
affordable)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.figure_data import (
    FigureInputs,
    compare_window,
    diverged_count,
    matched,
    nanmean,
    params,
    run_dataset,
    seed_band,
)

FIT_POINTS = 20  # points of a drawn power-law fit


def finite_size_table(compare, sims, escape_level: float, theories=None) -> dict:
    """Per run (sorted by N): N, first-stage deviations (R, Q, log_eps) from the experiment's
    comparison (`analysis.comparison`, None: no theory), the escape spreads and the escape's
    deviation from the theory (`escape_deviation`; `theories` matched to `sims`)."""
    order = sorted(range(len(sims)), key=lambda i: params(sims[i]).N)
    theories = list(theories) if theories is not None else [None] * len(sims)
    rows = {"index": order, "N": [], "R": [], "Q": [], "log_eps": [], "alpha_end": []}
    for i in order:
        rows["N"].append(params(sims[i]).N)
        if compare is None:
            dev = dict.fromkeys(("R", "Q", "log_eps", "alpha_end"), np.nan)
        else:
            dev = analysis.comparison_row(compare, sims[i].attrs["run_name"])
        for key in ("R", "Q", "log_eps", "alpha_end"):
            rows[key].append(dev[key])
    rows["escape"] = analysis.escape_spread([sims[i] for i in order], escape_level)
    devs = [analysis.escape_deviation(sims[i], theories[i], escape_level) for i in order]
    rows["escape_dev"] = [d for d, _ in devs]
    rows["escape_n"] = [n for _, n in devs]
    keep = ("escape", "index")
    return {k: (np.array(v) if k not in keep else v) for k, v in rows.items()}


def power_law_line(N, values, over_fitted: bool) -> dict:
    """Fit of values against N (`analysis.fit_power_law`) and its line: over the range of the
    fitted points (over_fitted) or of every N; NaN where there is no fit."""
    try:
        fit = analysis.fit_power_law(N, values)
    except ValueError:
        nan = np.full(FIT_POINTS, np.nan)
        return {"ok": False, "exponent": np.nan, "stderr": np.nan, "x": nan, "y": nan}
    shown = N[np.isfinite(values) & (np.asarray(values) > 0)] if over_fitted else N
    grid = np.geomspace(shown.min(), shown.max(), FIT_POINTS)
    return {"ok": True, "exponent": fit.exponent, "stderr": fit.stderr, "x": grid,
            "y": fit.prefactor * grid**fit.exponent}  # fmt: skip


def fits(table: dict) -> xr.Dataset:
    """Power-law fits of the deviations (over every N) and of the escape's deviation and
    spread (over the fitted points), and the N^(-1/2) reference through the first point."""
    N = table["N"].astype(float)
    std = np.array([e.std for e in table["escape"]])
    series = {key: (table[key], False) for key in ("R", "Q", "log_eps")}
    series |= {"escape_dev": (table["escape_dev"], True), "escape_std": (std, True)}
    lines = {key: power_law_line(N, values, over) for key, (values, over) in series.items()}
    ds = xr.Dataset(coords={"fit": list(lines)})
    for name in ("ok", "exponent", "stderr"):
        ds[f"fit_{name}"] = ("fit", [line[name] for line in lines.values()])
    for name in ("x", "y"):
        ds[f"fit_{name}"] = (("fit", "point"), np.stack([line[name] for line in lines.values()]))
    ref = table["log_eps"] if np.isfinite(table["log_eps"]).any() else table["R"]
    k = np.flatnonzero(np.isfinite(ref))
    grid = np.geomspace(N.min(), N.max(), FIT_POINTS)
    ds["reference_x"] = ("point", grid)
    ds["reference_y"] = ("point", ref[k[0]] * (grid / N[k[0]]) ** -0.5 if len(k) else grid * np.nan)
    return ds


def predicted_rms_R(theory, alpha_end: float) -> float:
    """The linear-noise prediction of the first-stage RMS of R (simulation minus its own
    ODE): sqrt of the mean of R_sd^2 over seeds, entries and the records 0 < alpha <=
    alpha_end (the comparison's window); NaN without R_sd (docs/theory.md, section 12)."""
    if theory is None or "R_sd" not in theory:
        return float("nan")
    alpha = theory["alpha"].values
    end = alpha_end if np.isfinite(alpha_end) else alpha[-1]
    sd = theory["R_sd"].values[:, (alpha > 0) & (alpha <= end)]
    sd = sd[np.isfinite(sd)]
    return float(np.sqrt(np.mean(sd**2))) if sd.size else float("nan")


def half_power_prefactor(N, values) -> float:
    """c of the law c N^(-1/2) fitted to `values` (least squares in log): the geometric mean
    of values sqrt(N) over the finite positive points."""
    N, values = np.asarray(N, dtype=float), np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0)
    return float(np.exp(np.mean(np.log(values[ok] * np.sqrt(N[ok]))))) if ok.any() else np.nan


def data(inputs: FigureInputs, options) -> xr.Dataset:
    sims, escape_level = inputs.sims, options.escape_level
    theory_of = matched(sims, inputs.theories)
    table = finite_size_table(inputs.compare, sims, escape_level, theory_of)
    order = table["index"]
    per_run = {}
    for rank, i in enumerate(order):
        sim, theory = sims[i], theory_of[i]
        alpha = sim["alpha"].values
        row = dict(zip(("eps_mean", "eps_lo", "eps_hi"), seed_band(sim["eps_meta"].values)))
        row["eps_theory"] = (
            np.full(len(alpha), np.nan) if theory is None else nanmean(theory["eps_meta"].values, 0)
        )
        row |= {"alpha": alpha, "n_records": len(alpha), "has_theory": theory is not None}
        row |= {"diverged": diverged_count(sim), "seeds": sim.sizes["seed"]}
        for key in ("N", "R", "Q", "log_eps", "alpha_end", "escape_dev", "escape_n"):
            row[key] = table[key][rank]
        row["R_predicted"] = predicted_rms_R(theory, row["alpha_end"])
        row |= {f"escape_{k}": getattr(table["escape"][rank], k) for k in
                ("mean", "std", "min", "max", "n_escaped", "n_seeds")}  # fmt: skip
        for name, value in row.items():
            dims = ("record",) if np.ndim(value) else ()
            per_run.setdefault(name, (dims, []))[1].append(value)
    ds = run_dataset(per_run, [sims[i].attrs["run_name"] for i in order]).merge(fits(table))
    N = ds["N"].values
    ds["R_prefactor_fitted"] = half_power_prefactor(N, ds["R"].values)
    ds["R_prefactor_predicted"] = half_power_prefactor(N, ds["R_predicted"].values)
    level, alpha_end = compare_window(inputs.compare)
    ds.attrs.update(first_stage_level=level, escape_level=float(escape_level))
    ds.attrs["first_stage_alpha"] = "none" if alpha_end is None else alpha_end
    return ds
