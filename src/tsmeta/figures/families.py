"""Figures of families of runs: over-parameterisation, task variability, algorithms, finite N,
finite data. Each kind is `draw_<kind>(experiment, options, sims, theories, extra)`.

Conventions are those of `figures.dynamics`: student units are relabelled per seed
(`align_pair`) before anything is averaged over seeds; lines are means over seeds, bands
min-max over seeds (`_band`); theories are dashed. A theory belongs to the simulation with the
same `run_name` attribute (the workflow passes them in the same order). Quantities that
compare with the theory entry by entry (the first-stage deviations) relabel the theory like its
simulation; the diagonal overlap R_kk, a label-free summary, is taken after relabelling each
Dataset by its own final state (`_self_aligned`). Seeds that diverged
are NaN from their divergence on: they drop out of every mean, and each legend entry says how
many seeds of its run diverged.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta import analysis
from tsmeta.analysis import align_pair
from tsmeta.figures.dynamics import _band, _run_label, alpha_axis
from tsmeta.io import params_from_attrs

DEFAULT_ESCAPE_LEVEL = 1e-3
DEFAULT_ARRANGEMENT_THRESHOLD = 0.5
DEFAULT_FLOOR_WINDOW = 0.2
EPS_LABEL = r"$\varepsilon_{\rm meta}$"
ALPHA_LABEL = r"$\alpha = t/N$"


# --- shared helpers -------------------------------------------------------------------------


def _legend(ax, **kw):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _params(ds: xr.Dataset):
    return params_from_attrs(ds.attrs)


def _matched(sims, theories) -> list[xr.Dataset | None]:
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


def _diverged_suffix(sim: xr.Dataset) -> str:
    n = int(np.nansum(sim["diverged"].values)) if "diverged" in sim else 0
    return f" ({n}/{sim.sizes['seed']} diverged)" if n else ""


def _nanmean(values, axis=0):
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        count = np.isfinite(values).sum(axis=axis)
        total = np.nansum(values, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _theory_line(ax, x, theory: xr.Dataset | None, values=None, color="black", label=None,
                 ls="--", lw=1.0):  # fmt: skip
    """Mean over seeds of a theory quantity (default eps_meta) as a line."""
    if theory is None:
        return
    values = theory["eps_meta"].values if values is None else values
    ax.plot(x, _nanmean(values, 0), color=color, ls=ls, lw=lw, label=label)


def _eps_axes(ax, xscale: str, thresholds=()):
    for level in thresholds:
        ax.axhline(level, color="grey", ls=":", lw=0.7)
    ax.set_yscale("log")
    ax.set_xscale(xscale)
    ax.set_xlabel(ALPHA_LABEL)
    ax.set_ylabel(EPS_LABEL)


def _self_aligned(ds: xr.Dataset | None) -> xr.Dataset | None:
    """ds with its units relabelled per seed by its own last finite record.

    Used where a label-free quantity (the diagonal overlap) is compared between a simulation
    and its theory: finite-N noise can make a simulation and its theory, started from the same
    overlaps, specialise onto a different permutation or sign, so the simulation's relabelling
    need not fit its theory at the end.
    """
    return None if ds is None else align_pair(ds, None)[0]


def _diag_overlap(ds: xr.Dataset) -> np.ndarray:
    """Mean over k < min(K, M) of R_kk (seed, alpha): the overlap with the meta-teacher after
    relabelling (ds must already be aligned)."""
    R = ds["R"].values
    d = min(R.shape[-2], R.shape[-1])
    return _nanmean(np.stack([R[..., k, k] for k in range(d)]), 0)


def _last_finite(values: np.ndarray) -> np.ndarray:
    """values (seed, alpha, ...) -> (seed, ...) at each seed's last all-finite record."""
    out = np.full((values.shape[0],) + values.shape[2:], np.nan)
    for i in range(values.shape[0]):
        ok = np.flatnonzero(np.isfinite(values[i].reshape(values.shape[1], -1)).all(axis=1))
        if len(ok):
            out[i] = values[i, ok[-1]]
    return out


def _finish(fig, experiment, options, note):
    """Title and a grey note under the axes (inside the constrained layout)."""
    fig.suptitle(options.get("title") or experiment, fontsize=11)
    fig.supxlabel(note, fontsize=7, color="grey")
    return fig


def _empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


# --- 1. over-parameterisation --------------------------------------------------------------


def overparameterization_families(params_list) -> dict[str, list[int]]:
    """Group runs (indices) into the two families of the over-parameterisation figure.

    (a) both rates scaled together from (eta_J, eta_w) = (3, 9): runs with eta_w == 3 eta_J;
    (b) the exact inner rate: runs with eta_w == 3 K. A run can be in both (K = 3, (3, 9));
    runs in neither go to "other". Empty families are left out.
    """
    fam = {"(a) η_w = 3 η_J": [], "(b) η_w = 3K": [], "other": []}
    keys = list(fam)
    for i, p in enumerate(params_list):
        in_a = math.isclose(p.eta_w, 3 * p.eta_J, rel_tol=1e-6)
        in_b = math.isclose(p.eta_w, 3 * p.K, rel_tol=1e-6)
        if in_a:
            fam[keys[0]].append(i)
        if in_b:
            fam[keys[1]].append(i)
        if not (in_a or in_b):
            fam[keys[2]].append(i)
    return {k: v for k, v in fam.items() if v}


def arrangement_summary(found) -> str:
    """'2-1-1 ×3' style lines, most frequent arrangement first (counts are seeds)."""
    if not found:
        return "no data"
    return "\n".join(f"{label} ×{count}" for label, count in found.most_common())


def _mean_final_abs_R(sim: xr.Dataset) -> np.ndarray:
    aligned, _ = align_pair(sim, None)
    return _nanmean(np.abs(_last_finite(aligned["R"].values)), 0)  # (K, M)


def draw_overparameterization(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) per K in each family (sim band, theory dashed); final |R| heat maps,
    each annotated with the arrangement its seeds found (majority label, seeds that found it)."""
    xscale = options.get("xscale", "log")
    threshold = options.get("arrangement_threshold", DEFAULT_ARRANGEMENT_THRESHOLD)
    params = [_params(s) for s in sims]
    matched = _matched(sims, theories)
    families = overparameterization_families(params)
    Ks = sorted({p.K for p in params})
    palette = sns.color_palette("colorblind", max(len(Ks), 3))
    color_of = {K: palette[i % len(palette)] for i, K in enumerate(Ks)}

    n_runs = len(sims)
    fig = plt.figure(figsize=(max(10, 2.3 * n_runs), 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.2, 1])
    fam_axes = np.atleast_1d(top.subplots(1, max(1, len(families)), sharey=True))
    for ax, (name, members) in zip(fam_axes, families.items()):
        for i in members:
            sim, p = sims[i], params[i]
            x = alpha_axis(sim["alpha"].values, xscale)
            label = f"K={p.K}, η_J={p.eta_J:.3g}, η_w={p.eta_w:.3g}{_diverged_suffix(sim)}"
            _band(ax, x, sim["eps_meta"].values, color_of[p.K], label)
            _theory_line(ax, x, matched[i], color=color_of[p.K])
        _eps_axes(ax, xscale, options.get("thresholds", []))
        ax.set_title(name, fontsize=9, loc="left")
        _legend(ax, fontsize=7, loc="lower left")
    if not families:
        _empty(fam_axes[0], "no runs")

    heat_axes = np.atleast_1d(bottom.subplots(1, max(1, n_runs)))
    finals = [_mean_final_abs_R(sim) for sim in sims]
    vmax = max([np.nanmax(f) for f in finals if np.isfinite(f).any()] + [1.0])
    image = None
    for ax, sim, p, final in zip(heat_axes, sims, params, finals):
        image = ax.imshow(final, vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
        for (k, n), value in np.ndenumerate(final):
            if np.isfinite(value):
                ax.text(n, k, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value < 0.6 * vmax else "black")  # fmt: skip
        found = analysis.run_arrangements(sim, threshold)
        ax.set_title(f"K={p.K}, η_J={p.eta_J:.3g}, η_w={p.eta_w:.3g}\n"
                     + arrangement_summary(found), fontsize=7)  # fmt: skip
        ax.set_xticks(range(p.M))
        ax.set_yticks(range(p.K))
        ax.set_xlabel("teacher n", fontsize=7)
        ax.set_ylabel("student k", fontsize=7)
        ax.tick_params(labelsize=6)
    if image is not None:
        bottom.colorbar(image, ax=list(heat_axes), shrink=0.9,
                        label=r"$|R_{kn}|$ at $\alpha_{\rm final}$")  # fmt: skip
    return _finish(fig, experiment, options,
                   "top: lines mean, bands min-max over seeds, dashed theory. bottom: |R| at the "
                   "last record, mean over seeds after relabelling units per seed; titles: "
                   "arrangements found (student units per teacher unit) × seeds")  # fmt: skip


# --- 2. task variability --------------------------------------------------------------------


def draw_variability(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) and the diagonal overlap R_kk(alpha) per gamma; the error floor vs gamma."""
    xscale = options.get("xscale", "log")
    window = options.get("floor_window", DEFAULT_FLOOR_WINDOW)
    matched = _matched(sims, theories)
    gammas = [_params(s).gamma for s in sims]
    order = np.argsort(gammas)[::-1]
    palette = sns.color_palette("viridis", max(len(sims), 2))
    fig, (ax_e, ax_r, ax_f) = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    floors_sim, floors_th = [], []
    for rank, i in enumerate(order):
        sim, theory, gamma = sims[i], matched[i], gammas[i]
        sim_al, th_al = _self_aligned(sim), _self_aligned(theory)
        color = palette[rank]
        x = alpha_axis(sim["alpha"].values, xscale)
        label = f"γ={gamma:g}{_diverged_suffix(sim)}"
        _band(ax_e, x, sim["eps_meta"].values, color, label)
        _theory_line(ax_e, x, theory, color=color)
        _band(ax_r, x, _diag_overlap(sim_al), color, label)
        if th_al is not None:
            _theory_line(ax_r, x, th_al, values=_diag_overlap(th_al), color=color)
        alpha = sim["alpha"].values
        floors_sim.append(analysis.error_floor(sim["eps_meta"].values, alpha, window))
        floors_th.append(
            analysis.error_floor(theory["eps_meta"].values, theory["alpha"].values, window)
            if theory is not None
            else np.full(1, np.nan)
        )
    _eps_axes(ax_e, xscale, options.get("thresholds", []))
    _legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("meta-generalisation error", fontsize=9, loc="left")
    ax_r.set_xscale(xscale)
    ax_r.set_xlabel(ALPHA_LABEL)
    ax_r.set_ylabel(r"overlap with the meta-teacher, mean$_k$ $R_{kk}$")
    ax_r.set_title("each run relabelled by its own final state", fontsize=9, loc="left")

    g = np.array([gammas[i] for i in order])
    fs = [np.atleast_1d(f) for f in floors_sim]
    ft = [np.atleast_1d(f) for f in floors_th]
    mean_s = np.array([_nanmean(f) for f in fs])
    lo_s = np.array([np.nanmin(f) if np.isfinite(f).any() else np.nan for f in fs])
    hi_s = np.array([np.nanmax(f) if np.isfinite(f).any() else np.nan for f in fs])
    yerr = np.vstack([mean_s - lo_s, hi_s - mean_s])
    ax_f.errorbar(g, mean_s, yerr=np.nan_to_num(yerr), fmt="o-", color="C0", capsize=3,
                  label="simulation (mean, min-max over seeds)")  # fmt: skip
    mean_t = np.array([_nanmean(f) for f in ft])
    if np.isfinite(mean_t).any():
        ax_f.plot(g, mean_t, "s--", color="black", label="theory (mean over seeds)")
    ax_f.set_yscale("log")
    ax_f.set_xlabel(r"task similarity $\gamma$")
    ax_f.set_ylabel(EPS_LABEL + " floor")
    ax_f.set_title(f"mean over the last {window:.0%} of the α range", fontsize=9, loc="left")
    _legend(ax_f, fontsize=7)
    return _finish(
        fig,
        experiment,
        options,
        "lines: mean over seeds; bands: min-max over seeds; dashed: theory",
    )


# --- 3. algorithms --------------------------------------------------------------------------


def draw_algorithms(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) and the diagonal overlap for each algorithm, with the FO-ANIL theory once.

    eps_meta is the error after the head-only adaptation of MODEL.md for every algorithm. The
    theory is the FO-ANIL theory of the FO-ANIL run if there is one, else of the first run.
    """
    xscale = options.get("xscale", "log")
    matched = _matched(sims, theories)
    params = [_params(s) for s in sims]
    palette = sns.color_palette("colorblind", max(len(sims), 4))
    fig, (ax_e, ax_r) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    for i, (sim, p) in enumerate(zip(sims, params)):
        sim_al = _self_aligned(sim)
        x = alpha_axis(sim["alpha"].values, xscale)
        label = f"{p.algorithm.upper()}{_diverged_suffix(sim)}"
        _band(ax_e, x, sim["eps_meta"].values, palette[i], label)
        _band(ax_r, x, _diag_overlap(sim_al), palette[i], label)
    fo = [i for i, p in enumerate(params) if p.algorithm == "fo-anil" and matched[i] is not None]
    with_theory = fo or [i for i, t in enumerate(matched) if t is not None]
    if with_theory:
        i = with_theory[0]
        theory = _self_aligned(matched[i])
        x = alpha_axis(theory["alpha"].values, xscale)
        label = f"theory ({theory.attrs.get('theory_algorithm', 'fo-anil').upper()})"
        _theory_line(ax_e, x, theory, color="black", label=label)
        _theory_line(ax_r, x, theory, values=_diag_overlap(theory), color="black", label=label)
    _eps_axes(ax_e, xscale, options.get("thresholds", []))
    _legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title(_run_label(sims[0]).split(", ", 1)[1] if sims else "", fontsize=8, loc="left")
    ax_r.set_xscale(xscale)
    ax_r.set_xlabel(ALPHA_LABEL)
    ax_r.set_ylabel(r"mean$_k$ $R_{kk}$ (units relabelled per seed)")
    _legend(ax_r, fontsize=7, loc="upper left")
    return _finish(
        fig,
        experiment,
        options,
        "lines: mean over seeds; bands: min-max over seeds; black dashed: FO-ANIL ODE "
        "theory; eps_meta: head-only adaptation (MODEL.md) for every algorithm",
    )


# --- 4. finite size -------------------------------------------------------------------------


def finite_size_table(
    sims, theories, level: float, escape_level: float, alpha_end: float | None = None
) -> dict:
    """Per run (sorted by N): N, first-stage deviations (R, Q, log_eps) and escape spreads.

    The deviation window ends where each run's theory first falls below `level`, or at the
    fixed `alpha_end` if given (analysis.stage_deviation).
    """
    matched = _matched(sims, theories)
    order = sorted(range(len(sims)), key=lambda i: _params(sims[i]).N)
    rows = {"index": order, "N": [], "R": [], "Q": [], "log_eps": [], "alpha_end": []}
    for i in order:
        rows["N"].append(_params(sims[i]).N)
        dev = (
            analysis.stage_deviation(sims[i], matched[i], level, alpha_end=alpha_end)
            if matched[i] is not None
            else dict.fromkeys(("R", "Q", "log_eps", "alpha_end"), np.nan)
        )
        for key in ("R", "Q", "log_eps", "alpha_end"):
            rows[key].append(dev[key])
    rows["escape"] = analysis.escape_spread([sims[i] for i in order], escape_level)
    return {k: (np.array(v) if k not in ("escape", "index") else v) for k, v in rows.items()}


def _fit_label(name, N, dev) -> str:
    try:
        fit = analysis.fit_power_law(N, dev)
    except ValueError:
        return name
    err = "" if not np.isfinite(fit.stderr) else f" ± {fit.stderr:.2f}"
    return f"{name}: slope {fit.exponent:.2f}{err}"


def draw_finite_size(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) per N with theory; first-stage deviation vs N with power-law fits; the
    seed-to-seed spread of the escape alpha vs N.

    Options: first_stage_level (deviation window up to the theory's first crossing of it),
    first_stage_alpha (a fixed window end instead, the same for every N), escape_level.
    """
    xscale = options.get("xscale", "log")
    level = options.get("first_stage_level", 0.01)
    fixed_end = options.get("first_stage_alpha")
    escape_level = options.get("escape_level", DEFAULT_ESCAPE_LEVEL)
    matched = _matched(sims, theories)
    table = finite_size_table(sims, theories, level, escape_level, fixed_end)
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"up to the theory's first crossing of {level:g}"
    )
    palette = sns.color_palette("rocket", max(len(sims), 2))
    fig, (ax_e, ax_d, ax_s) = plt.subplots(1, 3, figsize=(16, 4.4), layout="constrained")

    for rank, i in enumerate(table["index"]):
        sim, p = sims[i], _params(sims[i])
        x = alpha_axis(sim["alpha"].values, xscale)
        _band(ax_e, x, sim["eps_meta"].values, palette[rank], f"N={p.N}{_diverged_suffix(sim)}")
        _theory_line(ax_e, x, matched[i], color=palette[rank], lw=0.8)
    ends = table["alpha_end"][np.isfinite(table["alpha_end"])]
    if len(ends):
        label = "end of the deviation window" + ("" if fixed_end else " (earliest run)")
        ax_e.axvline(ends.min(), color="grey", ls="-.", lw=0.8, label=label)
    _eps_axes(ax_e, xscale, [level, escape_level])
    _legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("simulation (bands) and theory (dashed)", fontsize=9, loc="left")

    N = table["N"].astype(float)
    if np.isfinite(table["R"]).any():
        for key, name, marker, color in (
            ("R", "R", "o", "C0"), ("Q", "Q", "s", "C1"), ("log_eps", "log10 ε", "^", "C2"),
        ):  # fmt: skip
            ax_d.plot(N, table[key], marker, ls="", color=color,
                      label=_fit_label(name, N, table[key]))  # fmt: skip
            try:
                fit = analysis.fit_power_law(N, table[key])
                grid = np.geomspace(N.min(), N.max(), 20)
                ax_d.plot(grid, fit.prefactor * grid**fit.exponent, color=color, lw=0.8)
            except ValueError:
                pass
        ref = table["log_eps"] if np.isfinite(table["log_eps"]).any() else table["R"]
        k = np.flatnonzero(np.isfinite(ref))
        if len(k):
            grid = np.geomspace(N.min(), N.max(), 20)
            ax_d.plot(grid, ref[k[0]] * (grid / N[k[0]]) ** -0.5, color="grey", ls=":",
                      label=r"$\propto N^{-1/2}$")  # fmt: skip
        ax_d.set_xscale("log")
        ax_d.set_yscale("log")
    else:
        _empty(ax_d, "no theory: no deviation")
    ax_d.set_xlabel("N")
    ax_d.set_ylabel("RMS(simulation − theory), first stage")
    ax_d.set_title(window, fontsize=9, loc="left")
    _legend(ax_d, fontsize=7)

    esc = table["escape"]
    std = np.array([e.std for e in esc])
    mean = np.array([e.mean for e in esc])
    lo, hi = np.array([e.min for e in esc]), np.array([e.max for e in esc])
    ax_s.plot(N, std, "o-", color="C3", label=_fit_label("std over seeds", N, std))
    ax_s.plot(N, hi - lo, "s--", color="C4", label="max − min over seeds")
    for n_, s_, e in zip(N, np.where(np.isfinite(std), std, hi - lo), esc):
        if np.isfinite(s_):
            ax_s.annotate(f"{e.n_escaped}/{e.n_seeds}", (n_, s_), fontsize=6,
                          textcoords="offset points", xytext=(3, 3))  # fmt: skip
    ax_s.set_xscale("log")
    if np.isfinite(np.r_[std, hi - lo]).any() and np.nanmin(np.r_[std, hi - lo]) > 0:
        ax_s.set_yscale("log")
    ax_s.set_xlabel("N")
    ax_s.set_ylabel(rf"spread of the escape $\alpha$ ($\varepsilon$ < {escape_level:g})")
    means = ", ".join(f"{m:.3g}" for m in mean if np.isfinite(m)) or "none"
    ax_s.set_title(f"mean escape α: {means}", fontsize=8, loc="left")
    _legend(ax_s, fontsize=7)
    if not np.isfinite(np.r_[std, hi - lo]).any():
        _empty(ax_s, f"no seed reached {escape_level:g}")
    return _finish(fig, experiment, options,
                   "deviation: RMS over seeds, records in the window (panel title) and entries, "
                   "units relabelled per seed; fitted slopes ± standard error; the escape spread "
                   "counts only the seeds that escape (annotated escaped/seeds)")  # fmt: skip


# --- 5. finite data -------------------------------------------------------------------------


def _pv_label(p) -> str:
    return f"P={p.P}, V={p.V}"


def draw_finite_data(experiment, options, sims, theories, extra=None):
    """Per run: eps_meta(alpha) of the simulation against the theory with and without its
    finite-V term; then the first-stage deviation of each theory variant per run.

    Both variants are compared on the same window: up to where the theory with the finite-V
    term first falls below first_stage_level, or 0 < alpha <= first_stage_alpha if given.
    """
    xscale = options.get("xscale", "log")
    level = options.get("first_stage_level", 0.01)
    fixed_end = options.get("first_stage_alpha")
    with_v = _matched(sims, theories)
    without_v = _matched(sims, (extra or {}).get("theories_nofv", []))
    n = len(sims)
    ncols = 2 if n == 4 else min(max(n, 1), 3)
    nrows = max(1, math.ceil(n / ncols))
    fig = plt.figure(figsize=(4.6 * ncols, 3.3 * nrows + 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.3 * nrows, 3.6])
    axes = np.atleast_1d(top.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.remove()
    for ax, sim, th, th0 in zip(axes, sims, with_v, without_v):
        p = _params(sim)
        x = alpha_axis(sim["alpha"].values, xscale)
        _band(ax, x, sim["eps_meta"].values, "C0", "simulation" + _diverged_suffix(sim))
        _theory_line(ax, x, th, color="black", label="theory with finite-V term")
        _theory_line(ax, x, th0, color="C3", ls=":", lw=1.3, label="theory without it")
        _eps_axes(ax, xscale, [level])
        ax.set_title(_pv_label(p), fontsize=9, loc="left")
    if n:
        _legend(axes[0], fontsize=7, loc="lower left")

    ax_b = bottom.subplots(1, 1)
    quantities = (("R", "R"), ("Q", "Q"), ("log_eps", "log10 ε"))
    colors = sns.color_palette("colorblind", 3)
    width = 0.13
    any_bar = False
    for i, sim in enumerate(sims):
        end = fixed_end
        if end is None and with_v[i] is not None:
            th = with_v[i]
            end = analysis.first_stage_end(th["eps_meta"].values, th["alpha"].values, level)
        for v, (theory, hatch, variant) in enumerate(
            ((with_v[i], "", "with finite V"), (without_v[i], "//", "without"))
        ):
            if theory is None:
                continue
            dev = analysis.stage_deviation(sim, theory, level, alpha_end=end)
            for q, (key, name) in enumerate(quantities):
                pos = i + (q * 2 + v - 2.5) * width
                ax_b.bar(pos, dev[key], width, color=colors[q], hatch=hatch, edgecolor="k", lw=0.4,
                         label=f"{name}, theory {variant}" if i == 0 else None)  # fmt: skip
                any_bar = True
    ax_b.set_xticks(range(n))
    ax_b.set_xticklabels([_pv_label(_params(s)) for s in sims], fontsize=8)
    ax_b.set_ylabel("RMS(simulation − theory), first stage")
    if any_bar:
        ax_b.set_yscale("log")
        _legend(ax_b, fontsize=7, ncol=3)
    else:
        _empty(ax_b, "no theory")
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"0 < α ≤ where the theory (with finite V) first falls below {level:g}"
    )
    note = f"deviation window: {window}; the theory has no finite-P correction"
    return _finish(fig, experiment, options, note)
