"""Over-parameterisation (K > M): eps_meta per family of runs and the final |R_kn| with the
arrangement the student units found."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta import analysis
from tsmeta.analysis import align_pair
from tsmeta.figures.style import (
    alpha_axis,
    band,
    diverged_suffix,
    empty,
    eps_axes,
    finish,
    last_finite,
    legend,
    matched,
    nanmean,
    params,
    theory_line,
)

DEFAULT_ARRANGEMENT_THRESHOLD = 0.5


def overparameterization_families(options: dict, n_runs: int) -> dict[str, list[int]]:
    """The panels of the figure: option `families` maps a panel title to the positions of its
    runs in the experiment's run list (config order); a run may be in several panels. Without
    the option, one panel holds every run. Positions were checked at validation time; an
    out-of-range one left here is dropped."""
    families = options.get("families") or {"all runs": list(range(n_runs))}
    out = {name: [i for i in members if 0 <= i < n_runs] for name, members in families.items()}
    return {name: members for name, members in out.items() if members}


def _rates_label(p) -> str:
    """K and both rates, the rates as mathtext symbols."""
    return rf"K={p.K}, $\eta_J$={p.eta_J:.3g}, $\eta_w$={p.eta_w:.3g}"


def arrangement_summary(found) -> str:
    """'2-1-1 ×3' style lines, most frequent arrangement first (counts are seeds)."""
    if not found:
        return "no data"
    return "\n".join(f"{label} ×{count}" for label, count in found.most_common())


def _mean_final_abs_R(sim: xr.Dataset) -> np.ndarray:
    aligned, _ = align_pair(sim, None)
    return nanmean(np.abs(last_finite(aligned["R"].values)), 0)  # (K, M)


def draw_overparameterization(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) per K in each family (sim band, theory dashed); final |R| heat maps,
    each annotated with the arrangement its seeds found (majority label, seeds that found it)."""
    xscale = options.get("xscale", "log")
    threshold = options.get("arrangement_threshold", DEFAULT_ARRANGEMENT_THRESHOLD)
    plist = [params(s) for s in sims]
    theory_of = matched(sims, theories)
    families = overparameterization_families(options, len(sims))
    Ks = sorted({p.K for p in plist})
    palette = sns.color_palette("colorblind", max(len(Ks), 3))
    color_of = {K: palette[i % len(palette)] for i, K in enumerate(Ks)}

    n_runs = len(sims)
    fig = plt.figure(figsize=(max(10, 2.3 * n_runs), 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.2, 1])
    fam_axes = np.atleast_1d(top.subplots(1, max(1, len(families)), sharey=True))
    for ax, (name, members) in zip(fam_axes, families.items()):
        for i in members:
            sim, p = sims[i], plist[i]
            x = alpha_axis(sim["alpha"].values, xscale)
            label = f"{_rates_label(p)}{diverged_suffix(sim)}"
            band(ax, x, sim["eps_meta"].values, color_of[p.K], label)
            theory_line(ax, x, theory_of[i], color=color_of[p.K])
        eps_axes(ax, xscale, options.get("thresholds", []))
        ax.set_title(name, fontsize=9, loc="left")
        legend(ax, fontsize=7, loc="lower left")
    if not families:
        empty(fam_axes[0], "no runs")

    heat_axes = np.atleast_1d(bottom.subplots(1, max(1, n_runs)))
    finals = [_mean_final_abs_R(sim) for sim in sims]
    vmax = max([np.nanmax(f) for f in finals if np.isfinite(f).any()] + [1.0])
    image = None
    for ax, sim, p, final in zip(heat_axes, sims, plist, finals):
        image = ax.imshow(final, vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
        for (k, n), value in np.ndenumerate(final):
            if np.isfinite(value):
                ax.text(n, k, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value < 0.6 * vmax else "black")  # fmt: skip
        found = analysis.run_arrangements(sim, threshold)
        ax.set_title(f"{_rates_label(p)}\n"
                     + arrangement_summary(found), fontsize=7)  # fmt: skip
        ax.set_xticks(range(p.M))
        ax.set_yticks(range(p.K))
        ax.set_xlabel("teacher n", fontsize=7)
        ax.set_ylabel("student k", fontsize=7)
        ax.tick_params(labelsize=6)
    if image is not None:
        bottom.colorbar(image, ax=list(heat_axes), shrink=0.9,
                        label=r"$|R_{kn}|$ at $\alpha_{\rm final}$")  # fmt: skip
    return finish(fig, experiment, options,
                   "top: lines mean, bands min-max over seeds, dashed theory. bottom: |R| at the "
                   "last record, mean over seeds after relabelling units per seed; titles: "
                   "arrangements found (student units per teacher unit) × seeds")  # fmt: skip
