"""Dynamics figures: simulation (mean and spread over seeds) next to the ODE theory.

Student units are relabelled per seed before averaging: units that end on the same teacher
unit in different seeds carry different labels (the specialisation breaks the permutation
symmetry at random), so each seed's units are permuted, and their signs flipped (g is odd),
so that student k ends aligned with teacher k (Hungarian assignment on |R| at the last
record of the simulation). The theory of that seed gets the same relabelling.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta.analysis import align_pair, first_crossing
from tsmeta.figures.style import ALPHA_LABEL, EPS_LABEL, alpha_axis, band, finish, run_label


def dynamics_row(axes, sim: xr.Dataset, theory: xr.Dataset | None, thresholds, xscale="log"):
    """eps_meta, R_kn and Q_kl against alpha for one run (simulation and theory)."""
    sim, theory = align_pair(sim, theory)
    alpha = sim["alpha"].values
    x = alpha_axis(alpha, xscale)
    ax_e, ax_r, ax_q = axes
    palette = sns.color_palette("colorblind", 10)

    band(ax_e, x, sim["eps_meta"].values, palette[0], "simulation (closed form)")
    mc = sim["eps_meta_mc"].values
    with np.errstate(all="ignore"):
        mc_err = np.sqrt(np.nansum(sim["eps_meta_mc_err"].values ** 2, 0)) / mc.shape[0]
        ax_e.errorbar(
            x, np.nanmean(mc, 0), yerr=mc_err,
            fmt="o", ms=2.5, color=palette[1], elinewidth=0.8, label="simulation (Monte Carlo)",
        )  # fmt: skip
    if theory is not None:
        band(ax_e, x, theory["eps_meta"].values, "black", "theory (ODE)", lw=1.0, alpha_fill=0.1)
        eps_th = np.nanmean(theory["eps_meta"].values, 0)
    eps_sim = np.nanmean(sim["eps_meta"].values, 0)
    for level in thresholds:
        ax_e.axhline(level, color="grey", ls=":", lw=0.8)
        a_sim = first_crossing(eps_sim, alpha, level)
        if np.isfinite(a_sim):
            ax_e.axvline(a_sim, color=palette[0], ls="--", lw=0.7, alpha=0.7)
        if theory is not None:
            a_th = first_crossing(eps_th, alpha, level)
            if np.isfinite(a_th):
                ax_e.axvline(a_th, color="black", ls="--", lw=0.7, alpha=0.5)
        ax_e.annotate(f"{level:g}", (1.0, level), xycoords=("axes fraction", "data"), fontsize=7,
                      ha="right", va="bottom", color="grey")  # fmt: skip
    ax_e.set_yscale("log")
    ax_e.set_ylabel(EPS_LABEL)
    diverged = int(sim["diverged"].values.sum())
    if diverged:
        ax_e.text(0.02, 0.02, f"{diverged} seed(s) diverged", transform=ax_e.transAxes, color="red")

    K, M = sim.sizes["k"], sim.sizes["n"]
    for k in range(K):
        for n in range(M):
            color = palette[n % 10]
            band(ax_r, x, sim["R"].values[:, :, k, n], color, lw=1.2 if k == n else 0.8)
            if theory is not None:
                ax_r.plot(
                    x, np.nanmean(theory["R"].values[:, :, k, n], 0), color="black", lw=0.7, ls="--"
                )
    ax_r.set_ylabel(r"$R_{kn}$ (colour: teacher $n$)")
    for k in range(K):
        for l in range(k, K):
            color = palette[(k * K + l) % 10]
            band(ax_q, x, sim["Q"].values[:, :, k, l], color, lw=1.2 if k == l else 0.8)
            if theory is not None:
                ax_q.plot(
                    x, np.nanmean(theory["Q"].values[:, :, k, l], 0), color="black", lw=0.7, ls="--"
                )
    ax_q.set_ylabel(r"$Q_{kl}$")
    for ax in axes:
        ax.set_xscale(xscale)
        ax.set_xlabel(ALPHA_LABEL)
    ax_e.legend(fontsize=7, loc="upper right")
    ax_r.set_title(run_label(sim), fontsize=8, loc="left")


def draw_dynamics(experiment, options, sims, theories, extra=None):
    thresholds = options.get("thresholds", [0.01, 0.001])
    xscale = options.get("xscale", "log")
    n = len(sims)
    fig, axes = plt.subplots(n, 3, figsize=(14, 3.6 * n), squeeze=False, layout="constrained")
    by_name = {t.attrs["run_name"]: t for t in theories}
    for row, sim in zip(axes, sims):
        dynamics_row(row, sim, by_name.get(sim.attrs["run_name"]), thresholds, xscale)
    return finish(fig, experiment, options, "lines: mean over seeds; bands: min-max over seeds; "
                  "dashed: theory; units relabelled per seed (docs/simulation.md)")  # fmt: skip
