"""Task variability: eps_meta and the overlap with the meta-teacher per gamma, and the error
floor against gamma, painted from `figure_data.variability`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta.figure_data import alpha_axis, diverged_note
from tsmeta.figures.style import (
    ALPHA_LABEL,
    EPS_LABEL,
    draw_band,
    eps_axes,
    finish,
    legend,
    run_values,
)


def paint(ds: xr.Dataset, options):
    """eps_meta(alpha) and the diagonal overlap R_kk(alpha) per gamma; the error floor vs gamma."""
    xscale = options.xscale
    runs = [run_values(ds, i) for i in range(ds.sizes["run"])]
    gammas = [run["gamma"] for run in runs]
    order = np.argsort(gammas)[::-1]
    palette = sns.color_palette("viridis", max(len(runs), 2))
    fig, (ax_e, ax_r, ax_f) = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for rank, i in enumerate(order):
        run, color = runs[i], palette[rank]
        x = alpha_axis(run["alpha"], xscale)
        label = rf"$\gamma$={gammas[i]:g}{diverged_note(run['diverged'], run['seeds'])}"
        draw_band(ax_e, x, run["eps_mean"], run["eps_lo"], run["eps_hi"], color, label)
        if run["has_theory"]:
            ax_e.plot(x, run["eps_theory"], color=color, ls="--", lw=1.0)
        draw_band(ax_r, x, run["overlap_mean"], run["overlap_lo"], run["overlap_hi"], color,
                  label)  # fmt: skip
        if run["has_theory"]:
            ax_r.plot(x, run["overlap_theory"], color=color, ls="--", lw=1.0)
    eps_axes(ax_e, xscale, options.thresholds)
    legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("meta-generalisation error", fontsize=9, loc="left")
    ax_r.set_xscale(xscale)
    ax_r.set_xlabel(ALPHA_LABEL)
    ax_r.set_ylabel(r"overlap with the meta-teacher, mean$_k$ $R_{kk}$")
    ax_r.set_title("each run relabelled by its own final state", fontsize=9, loc="left")

    g = np.array([gammas[i] for i in order])
    mean_s = np.array([runs[i]["floor_mean"] for i in order])
    lo_s = np.array([runs[i]["floor_lo"] for i in order])
    hi_s = np.array([runs[i]["floor_hi"] for i in order])
    yerr = np.vstack([mean_s - lo_s, hi_s - mean_s])
    ax_f.errorbar(g, mean_s, yerr=np.nan_to_num(yerr), fmt="o-", color="C0", capsize=3,
                  label="simulation (mean, min-max over seeds)")  # fmt: skip
    mean_t = np.array([runs[i]["floor_theory"] for i in order])
    if np.isfinite(mean_t).any():
        ax_f.plot(g, mean_t, "s--", color="black", label="theory (mean over seeds)")
    ax_f.set_yscale("log")
    ax_f.set_xlabel(r"task similarity $\gamma$")
    ax_f.set_ylabel(EPS_LABEL + " floor")
    window = ds.attrs["floor_window"]
    ax_f.set_title(
        rf"mean over the last {window:.0%} of the $\alpha$ range", fontsize=9, loc="left"
    )
    legend(ax_f, fontsize=7)
    return finish(
        fig,
        ds.attrs["experiment"],
        options,
        "lines: mean over seeds; bands: min-max over seeds; dashed: theory",
    )
