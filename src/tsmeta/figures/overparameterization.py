"""Over-parameterisation (K > M): eps_meta per family of runs and the final |R_kn| with the
arrangement the student units found, painted from `figure_data.overparameterization`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta.figure_data import alpha_axis, diverged_note
from tsmeta.figures.style import (
    draw_band,
    empty,
    eps_axes,
    finish,
    legend,
    run_values,
)


def overparameterization_families(options, n_runs: int) -> dict[str, list[int]]:
    """The panels of the figure: option `families` maps a panel title to the positions of its
    runs in the experiment's run list (config order); a run may be in several panels. Without
    the option, one panel holds every run. Positions were checked at validation time; an
    out-of-range one left here is dropped."""
    families = options.families or {"all runs": list(range(n_runs))}
    out = {name: [i for i in members if 0 <= i < n_runs] for name, members in families.items()}
    return {name: members for name, members in out.items() if members}


def _rates_label(run: dict) -> str:
    """K and both rates, the rates as mathtext symbols."""
    return rf"K={int(run['K'])}, $\eta_J$={run['eta_J']:.3g}, $\eta_w$={run['eta_w']:.3g}"


def paint(ds: xr.Dataset, options):
    """eps_meta(alpha) per K in each family (sim band, theory dashed); final |R| heat maps,
    each annotated with the arrangement its seeds found (majority label, seeds that found it)."""
    xscale = options.xscale
    n_runs = ds.sizes["run"]
    runs = [run_values(ds, i) for i in range(n_runs)]
    families = overparameterization_families(options, n_runs)
    Ks = sorted({int(run["K"]) for run in runs})
    palette = sns.color_palette("colorblind", max(len(Ks), 3))
    color_of = {K: palette[i % len(palette)] for i, K in enumerate(Ks)}

    fig = plt.figure(figsize=(max(10, 2.3 * n_runs), 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.2, 1])
    fam_axes = np.atleast_1d(top.subplots(1, max(1, len(families)), sharey=True))
    for ax, (name, members) in zip(fam_axes, families.items()):
        for i in members:
            run = runs[i]
            color = color_of[int(run["K"])]
            x = alpha_axis(run["alpha"], xscale)
            label = f"{_rates_label(run)}{diverged_note(run['diverged'], run['seeds'])}"
            draw_band(ax, x, run["eps_mean"], run["eps_lo"], run["eps_hi"], color, label)
            if run["has_theory"]:
                ax.plot(x, run["eps_theory"], color=color, ls="--", lw=1.0)
        eps_axes(ax, xscale, options.thresholds)
        ax.set_title(name, fontsize=9, loc="left")
        legend(ax, fontsize=7, loc="lower left")
    if not families:
        empty(fam_axes[0], "no runs")

    heat_axes = np.atleast_1d(bottom.subplots(1, max(1, n_runs)))
    finals = [run["final_abs_R"] for run in runs]
    vmax = max([np.nanmax(f) for f in finals if np.isfinite(f).any()] + [1.0])
    image = None
    for ax, run, final in zip(heat_axes, runs, finals):
        image = ax.imshow(final, vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
        for (k, n), value in np.ndenumerate(final):
            if np.isfinite(value):
                ax.text(n, k, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value < 0.6 * vmax else "black")  # fmt: skip
        ax.set_title(f"{_rates_label(run)}\n"
                     + str(run["arrangements"]), fontsize=7)  # fmt: skip
        ax.set_xticks(range(int(run["M"])))
        ax.set_yticks(range(int(run["K"])))
        ax.set_xlabel("teacher n", fontsize=7)
        ax.set_ylabel("student k", fontsize=7)
        ax.tick_params(labelsize=6)
    if image is not None:
        bottom.colorbar(image, ax=list(heat_axes), shrink=0.9,
                        label=r"$|R_{kn}|$ at $\alpha_{\rm final}$")  # fmt: skip
    return finish(fig, ds.attrs["experiment"], options,
                   "top: lines mean, bands min-max over seeds, dashed theory. bottom: |R| at the "
                   "last record, mean over seeds after relabelling units per seed; titles: "
                   "arrangements found (student units per teacher unit) × seeds")  # fmt: skip
