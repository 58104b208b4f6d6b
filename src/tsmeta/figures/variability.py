"""Task variability: eps_meta and the overlap with the meta-teacher per gamma, and the error
floor against gamma."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta import analysis
from tsmeta.figures.style import (
    ALPHA_LABEL,
    EPS_LABEL,
    alpha_axis,
    band,
    diag_overlap,
    diverged_suffix,
    eps_axes,
    finish,
    legend,
    matched,
    nanmean,
    params,
    self_aligned,
    theory_line,
)

DEFAULT_FLOOR_WINDOW = 0.2


def draw_variability(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) and the diagonal overlap R_kk(alpha) per gamma; the error floor vs gamma."""
    xscale = options.get("xscale", "log")
    window = options.get("floor_window", DEFAULT_FLOOR_WINDOW)
    theory_of = matched(sims, theories)
    gammas = [params(s).gamma for s in sims]
    order = np.argsort(gammas)[::-1]
    palette = sns.color_palette("viridis", max(len(sims), 2))
    fig, (ax_e, ax_r, ax_f) = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    floors_sim, floors_th = [], []
    for rank, i in enumerate(order):
        sim, theory, gamma = sims[i], theory_of[i], gammas[i]
        sim_al, th_al = self_aligned(sim), self_aligned(theory)
        color = palette[rank]
        x = alpha_axis(sim["alpha"].values, xscale)
        label = rf"$\gamma$={gamma:g}{diverged_suffix(sim)}"
        band(ax_e, x, sim["eps_meta"].values, color, label)
        theory_line(ax_e, x, theory, color=color)
        band(ax_r, x, diag_overlap(sim_al), color, label)
        if th_al is not None:
            theory_line(ax_r, x, th_al, values=diag_overlap(th_al), color=color)
        alpha = sim["alpha"].values
        floors_sim.append(analysis.error_floor(sim["eps_meta"].values, alpha, window))
        floors_th.append(
            analysis.error_floor(theory["eps_meta"].values, theory["alpha"].values, window)
            if theory is not None
            else np.full(1, np.nan)
        )
    eps_axes(ax_e, xscale, options.get("thresholds", []))
    legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("meta-generalisation error", fontsize=9, loc="left")
    ax_r.set_xscale(xscale)
    ax_r.set_xlabel(ALPHA_LABEL)
    ax_r.set_ylabel(r"overlap with the meta-teacher, mean$_k$ $R_{kk}$")
    ax_r.set_title("each run relabelled by its own final state", fontsize=9, loc="left")

    g = np.array([gammas[i] for i in order])
    fs = [np.atleast_1d(f) for f in floors_sim]
    ft = [np.atleast_1d(f) for f in floors_th]
    mean_s = np.array([nanmean(f) for f in fs])
    lo_s = np.array([np.nanmin(f) if np.isfinite(f).any() else np.nan for f in fs])
    hi_s = np.array([np.nanmax(f) if np.isfinite(f).any() else np.nan for f in fs])
    yerr = np.vstack([mean_s - lo_s, hi_s - mean_s])
    ax_f.errorbar(g, mean_s, yerr=np.nan_to_num(yerr), fmt="o-", color="C0", capsize=3,
                  label="simulation (mean, min-max over seeds)")  # fmt: skip
    mean_t = np.array([nanmean(f) for f in ft])
    if np.isfinite(mean_t).any():
        ax_f.plot(g, mean_t, "s--", color="black", label="theory (mean over seeds)")
    ax_f.set_yscale("log")
    ax_f.set_xlabel(r"task similarity $\gamma$")
    ax_f.set_ylabel(EPS_LABEL + " floor")
    ax_f.set_title(
        rf"mean over the last {window:.0%} of the $\alpha$ range", fontsize=9, loc="left"
    )
    legend(ax_f, fontsize=7)
    return finish(
        fig,
        experiment,
        options,
        "lines: mean over seeds; bands: min-max over seeds; dashed: theory",
    )
