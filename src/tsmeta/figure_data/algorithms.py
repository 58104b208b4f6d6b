"""algorithms: what the figure draws (`figures.algorithms` paints it).

Per run (config order, dim `run`): eps_meta(alpha) and rms R(alpha) as seed means with min-max
bands, each algorithm's own theory (ANIL's ODE for ANIL and MAML, FO-ANIL's for FO-ANIL and
FO-MAML; `algorithm(name).theory`, docs/theory.md, section 9) as seed means, and the early
growth rate of R, all divided by the FO-ANIL linear rate at Q = T = I, P = infinity. Per
theory algorithm (dim `line`): the escape factor, the linear escape rate over the same
normalisation, on a grid of eta_w / eta_exact (eta_exact: the head rate of an exact inner
step, 3K for erf; docs/theory.md, section 10).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import xarray as xr

from tsmeta.activations import DEFAULT_ACTIVATION, activation
from tsmeta.algorithms import ALGORITHMS, algorithm
from tsmeta.analysis import early_growth_rate, first_crossing
from tsmeta.figure_data import (
    alpha_axis,
    described,
    diverged_suffix,
    matched,
    nanmean,
    params,
    seed_band,
)
from tsmeta.params import FIRST_STAGE_LEVEL
from tsmeta.theory.stability import escape_rate

ESCAPE_GRID = 120  # points of the escape factor's theory lines


def rms_R(ds) -> np.ndarray:
    """rms over the K x M entries of R, (seed, alpha)."""
    R = ds["R"].transpose("seed", "alpha", ...).values
    return np.sqrt(np.mean(R.reshape(R.shape[0], R.shape[1], -1) ** 2, axis=-1))


def crossing_text(ds, level: float) -> str:
    """alpha at which the seed-mean eps_meta first falls below level, or '> alpha_final'."""
    alpha = ds["alpha"].values
    a = float(first_crossing(nanmean(ds["eps_meta"].values, 0), alpha, level))
    return f"{a:.3g}" if np.isfinite(a) else f">{alpha[-1]:g}"


def linear_rate_fo(p) -> float:
    """FO-ANIL linear escape rate at Q = T = I, P = infinity (the normalisation)."""
    return escape_rate(replace(p, algorithm="fo-anil"), {"finite_p": False})


def exact_rate(p) -> float:
    """The head rate of an exact inner step with one student unit per teacher unit (3K)."""
    return activation(getattr(p, "activation", DEFAULT_ACTIVATION)).exact_head_rate(p.K, 1)


def _padded(rows, width) -> np.ndarray:
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _run_curves(sims, theories, xscale, level) -> dict:
    """Per run: the curves of the eps_meta and rms R panels and the legend label."""
    curves = {key: [] for key in ("alpha", "x", "eps", "R", "alpha_t", "x_t", "eps_t", "R_t")}
    labels = []
    for sim, theory in zip(sims, theories):
        p = params(sim)
        label = (
            f"{algorithm(p.algorithm).label}{diverged_suffix(sim)}: sim {crossing_text(sim, level)}"
        )
        curves["alpha"].append(sim["alpha"].values)
        curves["x"].append(alpha_axis(sim["alpha"].values, xscale))
        curves["eps"].append(seed_band(sim["eps_meta"].values))
        curves["R"].append(seed_band(rms_R(sim)))
        if theory is not None:
            label += f", theory {crossing_text(theory, level)}"
            curves["alpha_t"].append(theory["alpha"].values)
            curves["x_t"].append(alpha_axis(theory["alpha"].values, xscale))
            curves["eps_t"].append(nanmean(theory["eps_meta"].values, 0))
            curves["R_t"].append(nanmean(rms_R(theory), 0))
        else:
            for key in ("alpha_t", "x_t", "eps_t", "R_t"):
                curves[key].append(np.array([]))
        labels.append(label)
    A = max((len(a) for a in curves["alpha"]), default=0)
    At = max((len(a) for a in curves["alpha_t"]), default=0)
    rec, rec_t = ("run", "record"), ("run", "theory_record")
    data = {
        "label": ("run", np.array(labels, dtype=str)),
        "alpha": (rec, _padded(curves["alpha"], A)),
        "x": (rec, _padded(curves["x"], A)),
        "alpha_theory": (rec_t, _padded(curves["alpha_t"], At)),
        "x_theory": (rec_t, _padded(curves["x_t"], At)),
        "eps_theory": (rec_t, _padded(curves["eps_t"], At)),
        "rms_R_theory": (rec_t, _padded(curves["R_t"], At)),
    }
    for name, key in (("eps", "eps"), ("rms_R", "R")):
        for i, stat in enumerate(("mean", "min", "max")):
            data[f"{name}_{stat}"] = (rec, _padded([band[i] for band in curves[key]], A))
    return data


def _escape(sims, theories, plist, window) -> tuple[dict, dict]:
    """The escape-factor panel: theory lines (dim line, grid) and per-run points."""
    shown = sorted({p.algorithm for p in plist}, key=ALGORITHMS.index)
    p0 = plist[0]
    top = max(p.eta_w / exact_rate(p0) for p in plist)
    grid_x = np.linspace(0.05, max(2.5, 1.15 * top), ESCAPE_GRID)
    grid = [replace(p0, eta_w=float(v * exact_rate(p0))) for v in grid_x]
    fo = np.array([linear_rate_fo(g) for g in grid])
    theories_shown = list(dict.fromkeys(algorithm(a).theory for a in shown))
    lines = [
        escape_rate([replace(g, algorithm=name) for g in grid], {"finite_p": False}) / fo
        for name in theories_shown
    ]
    points = {key: [] for key in ("sim_mid", "sim_min", "sim_max", "ode")}
    for sim, theory, p in zip(sims, theories, plist):
        norm = linear_rate_fo(p)
        r = early_growth_rate(sim, **window).values / norm
        finite = np.isfinite(r).any()
        points["sim_mid"].append(np.nanmean(r) if finite else np.nan)
        points["sim_min"].append(np.nanmin(r) if finite else np.nan)
        points["sim_max"].append(np.nanmax(r) if finite else np.nan)
        ode = np.nan
        if theory is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no finite rate: NaN
                ode = np.nanmean(early_growth_rate(theory, **window).values / norm)
        points["ode"].append(ode)
    offsets = {a: 0.025 * (k - (len(shown) - 1) / 2) for k, a in enumerate(shown)}
    lines_data = {
        "escape_x": ("grid", grid_x),
        "escape_theory": (("line", "grid"), np.array(lines).reshape(len(lines), len(grid_x))),
        "line_algorithm": ("line", np.array(theories_shown, dtype=str)),
        "line_label": ("line", np.array([algorithm(a).label for a in theories_shown], dtype=str)),
        "line_index": ("line", np.array([ALGORITHMS.index(a) for a in theories_shown], int)),
    }
    run_data = {
        "escape_position": ("run", [p.eta_w / exact_rate(p) + offsets[p.algorithm] for p in plist]),
        **{f"escape_{key}": ("run", np.array(v, dtype=float)) for key, v in points.items()},
    }
    return lines_data, run_data


def data(inputs, options) -> xr.Dataset:
    """Everything the algorithms figure draws, for `figures.algorithms.paint`."""
    level = float((options.thresholds or [FIRST_STAGE_LEVEL])[0])
    window = {
        "alpha_max": float(getattr(options, "growth_alpha_max", 2.0)),
        "max_growth": float(getattr(options, "growth_max", 1.5)),
    }
    sims = list(inputs.sims)
    theory_of = matched(sims, inputs.theories)
    plist = [params(s) for s in sims]
    values = _run_curves(sims, theory_of, options.xscale, level)
    values.update(
        algorithm=("run", np.array([p.algorithm for p in plist], dtype=str)),
        algorithm_index=("run", np.array([ALGORITHMS.index(p.algorithm) for p in plist], int)),
        algorithm_label=("run", np.array([algorithm(p.algorithm).label for p in plist], dtype=str)),
        marker=("run", np.array([algorithm(p.algorithm).marker for p in plist], dtype=str)),
        eta_w=("run", np.array([p.eta_w for p in plist], dtype=float)),
        eta_w_exact=("run", np.array([exact_rate(p) for p in plist], dtype=float)),
        P=("run", np.array([p.P for p in plist], dtype=int)),
        alpha_final=("run", np.array([p.alpha_final for p in plist], dtype=float)),
    )
    if sims:
        lines, points = _escape(sims, theory_of, plist, window)
        values.update(lines)
        values.update(points)
    ds = xr.Dataset(values)
    ds.attrs.update(
        experiment=inputs.experiment,
        level=level,
        growth_alpha_max=window["alpha_max"],
        n_algorithms=len(ALGORITHMS),
        xscale=options.xscale,
        note="lines: mean over seeds, bands: min-max over seeds; dashed: each algorithm's own "
        "theory (ANIL's ODE for ANIL and MAML, FO-ANIL's for FO-ANIL and FO-MAML) from the "
        "seeds' initial overlaps; legend: alpha at which the seed-mean eps_meta first falls "
        f"below {level:g}. Escape factor: slope of log rms R over alpha <= "
        f"{window['alpha_max']:g} (before rms R grows by {window['max_growth']:g}), divided "
        "by the FO-ANIL linear rate at Q = T = I.",
    )
    return described(ds, UNITS)


UNITS = {
    "alpha": ("alpha = t/N", "1"),
    "eps_mean": ("eps_meta, mean over seeds", "1"),
    "eps_theory": ("theory eps_meta, mean over seeds", "1"),
    "rms_R_mean": ("rms over k, n of R_kn, mean over seeds", "1"),
    "rms_R_theory": ("theory rms R, mean over seeds", "1"),
    "escape_x": ("eta_w / eta_exact (3K for erf)", "1"),
    "escape_theory": ("linear escape rate / FO-ANIL linear rate (P = infinity)", "1"),
    "escape_sim_mid": ("early growth rate of R / FO-ANIL linear rate, mean over seeds", "1"),
    "escape_ode": ("the same on the run's ODE, mean over seeds", "1"),
}
