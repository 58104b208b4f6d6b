"""Finite data: simulations at a few P and V against the theory and its variants, and the
first-stage deviation of each theory per run; painted from `figure_data.finite_data`."""

from __future__ import annotations

import math

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

VARIANT_STYLES = [("C3", ":"), ("C2", "-."), ("C4", (0, (5, 1)))]  # colour, dashes


def _pv_label(run: dict) -> str:
    return f"P={int(run['P'])}, V={int(run['V'])}"


def _deviation_bars(ax_b, ds: xr.Dataset, runs: list[dict]) -> None:
    """First-stage RMS of each theory per run: a bar per quantity (colour) and theory (hatch)."""
    labels = [str(t) for t in ds["theory"].values]
    names = dict(zip(labels, (str(n) for n in ds["theory_name"].values)))
    quantities = (("R", "R"), ("Q", "Q"), ("log_eps", r"$\log_{10}\varepsilon$"))
    colors = sns.color_palette("colorblind", 3)
    hatches = ["", "//", "..", "xx"]
    width = 0.8 / max(1, len(quantities) * len(labels))
    any_bar = False
    for i in range(len(runs)):
        for v, label in enumerate(labels):
            for q, (key, name) in enumerate(quantities):
                value = float(ds["deviation"].sel(theory=label, quantity=key).values[i])
                pos = i + (q * len(labels) + v + 0.5) * width - 0.4
                ax_b.bar(pos, value, width, color=colors[q], hatch=hatches[v % 4],
                         edgecolor="k", lw=0.4,
                         label=f"{name}, {names[label]}" if i == 0 else None)  # fmt: skip
                any_bar = any_bar or np.isfinite(value)
    ax_b.set_xticks(range(len(runs)))
    ax_b.set_xticklabels([_pv_label(run) for run in runs], fontsize=8)
    ax_b.set_ylabel("RMS(simulation − theory), first stage")
    if any_bar:
        ax_b.set_yscale("log")
        legend(ax_b, fontsize=7, ncol=3)
    else:
        empty(ax_b, "no theory")


def paint(ds: xr.Dataset, options):
    """Per run: eps_meta(alpha) of the simulation against the theory and its variants (e.g.
    without the finite-V term); then the first-stage deviation of each theory per run.

    Every variant is compared on the window of the full theory (the experiment's `compare`
    key): up to where it first falls below its level, or 0 < alpha <= its alpha_end.
    """
    xscale = options.xscale
    level = ds.attrs["first_stage_level"]
    fixed_end = ds.attrs["first_stage_alpha"]
    fixed_end = None if isinstance(fixed_end, str) else float(fixed_end)
    n = ds.sizes["run"]
    runs = [run_values(ds, i) for i in range(n)]
    ncols = 2 if n == 4 else min(max(n, 1), 3)
    nrows = max(1, math.ceil(n / ncols))
    fig = plt.figure(figsize=(4.6 * ncols, 3.3 * nrows + 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.3 * nrows, 3.6])
    axes = np.atleast_1d(top.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.remove()
    for ax, run in zip(axes, runs):
        x = alpha_axis(run["alpha"], xscale)
        label = "simulation" + diverged_note(run["diverged"], run["seeds"])
        draw_band(ax, x, run["eps_mean"], run["eps_lo"], run["eps_hi"], "C0", label)
        if run["has_theory"]:
            ax.plot(x, run["eps_theory"], color="black", ls="--", lw=1.0,
                    label="theory (all terms)")  # fmt: skip
        for eps, name, (color, ls) in zip(run["variant_eps"], run["variant_label"],
                                          VARIANT_STYLES):  # fmt: skip
            if name:
                ax.plot(x, eps, color=color, ls=ls, lw=1.3, label=str(name))
        eps_axes(ax, xscale, [level])
        ax.set_title(_pv_label(run), fontsize=9, loc="left")
    if n:
        legend(axes[0], fontsize=7, loc="lower left")

    _deviation_bars(bottom.subplots(1, 1), ds, runs)
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"0 < α ≤ where the full theory first falls below {level:g}"
    )
    terms = ds.attrs["terms_included"]
    return finish(
        fig, ds.attrs["experiment"], options, f"deviation window: {window}. Theory: {terms}"
    )
