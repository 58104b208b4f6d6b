"""Dynamics figures: simulation (mean and spread over seeds) next to the ODE theory, painted
from the figure's data (`figure_data.dynamics`, which says how units are relabelled).

Colours: in the R panel the colour is the teacher unit n (thick: k = n); in the Q panel
Q_kk has the colour of the teacher its unit k ends on, Q_kl (k != l) is grey; theory dashed
black everywhere; one legend for the whole figure, right of the panels.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tsmeta.figure_data import alpha_axis
from tsmeta.figures.style import (
    ALPHA_LABEL,
    EPS_LABEL,
    UNSTABLE_END_NOTE,
    draw_band,
    finish,
    run_values,
    unstable_end,
    unstable_end_text,
)

SIM_COLOR = "#7b3294"  # not a teacher colour (those are the colorblind palette)
OFF_DIAGONAL = "0.6"


def teacher_colors(M: int):
    return sns.color_palette("colorblind", max(M, 3))


def theory_fill(ax, x, lo, hi):
    """The theory's predicted band (figure_data.theory_band): hatched, no fill colour."""
    ax.fill_between(x, lo, hi, facecolor="none", edgecolor="0.35", hatch="////", lw=0,
                    alpha=0.35)  # fmt: skip


def dynamics_row(axes, row: dict, thresholds, xscale="log") -> bool:
    """eps_meta, R_kn and Q_kl against alpha for one run (simulation and theory); whether the
    eps panel marks a theory that ends on an unstable state."""
    x = alpha_axis(row["alpha"], xscale)
    ax_e, ax_r, ax_q = axes
    K, M = int(row["K"]), int(row["M"])
    colors = teacher_colors(M)
    has_theory = bool(row["has_theory"])

    draw_band(ax_e, x, row["eps_mean"], row["eps_lo"], row["eps_hi"], SIM_COLOR)
    ax_e.errorbar(x, row["eps_mc"], yerr=row["eps_mc_err"], fmt="o", ms=3, mfc="none",
                  color=SIM_COLOR, elinewidth=0.8)  # fmt: skip
    if has_theory:
        ax_e.plot(x, row["eps_theory"], color="black", ls="--", lw=1.0)
        theory_fill(ax_e, x, row["eps_theory_lo"], row["eps_theory_hi"])
    for j, level in enumerate(thresholds):
        ax_e.axhline(level, color="grey", ls=":", lw=0.8)
        a_sim, a_th = row["crossing_sim"][j], row["crossing_theory"][j]
        if np.isfinite(a_sim):
            ax_e.axvline(a_sim, color=SIM_COLOR, ls="-.", lw=0.7, alpha=0.7)
        if has_theory and np.isfinite(a_th):
            ax_e.axvline(a_th, color="black", ls="-.", lw=0.7, alpha=0.5)
        ax_e.annotate(f"{level:g}", (1.0, level), xycoords=("axes fraction", "data"), fontsize=7,
                      ha="right", va="bottom", color="grey")  # fmt: skip
    ax_e.set_yscale("log")
    ax_e.set_ylabel(EPS_LABEL)
    unstable = unstable_end(float(row["growth_rate_end"]), float(row["alpha"][-1]))
    if unstable:
        ax_e.text(0.98, 0.97, unstable_end_text(float(row["growth_rate_end"]), "\n"),
                  transform=ax_e.transAxes, ha="right", va="top", fontsize=8)  # fmt: skip
    diverged = int(row["diverged"])
    if diverged:
        ax_e.text(0.02, 0.02, f"{diverged} seed(s) diverged", transform=ax_e.transAxes,
                  color="red", fontsize=8)  # fmt: skip

    for k in range(K):
        for n in range(M):
            draw_band(ax_r, x, row["R_mean"][:, k, n], row["R_lo"][:, k, n],
                      row["R_hi"][:, k, n], colors[n], lw=1.4 if k == n else 0.7)  # fmt: skip
            if has_theory:
                ax_r.plot(x, row["R_theory"][:, k, n], color="black", lw=0.7, ls="--")
                theory_fill(ax_r, x, row["R_theory_lo"][:, k, n], row["R_theory_hi"][:, k, n])
    ax_r.set_ylabel(r"$R_{kn}$")
    for k in range(K):
        for l in range(k, K):
            color = colors[k] if k == l and k < M else OFF_DIAGONAL
            draw_band(ax_q, x, row["Q_mean"][:, k, l], row["Q_lo"][:, k, l],
                      row["Q_hi"][:, k, l], color, lw=1.4 if k == l else 0.7)  # fmt: skip
            if has_theory:
                ax_q.plot(x, row["Q_theory"][:, k, l], color="black", lw=0.7, ls="--")
                theory_fill(ax_q, x, row["Q_theory_lo"][:, k, l], row["Q_theory_hi"][:, k, l])
    ax_q.set_ylabel(r"$Q_{kl}$")
    for ax in axes:
        ax.set_xscale(xscale)
        ax.set_xlabel(ALPHA_LABEL)
    title = str(row["label"])
    differ = int(row["differ"])
    if differ:
        title += (
            f"\ntheory and simulation specialised onto different teacher units in {differ} of "
            f"{int(row['seeds'])} seeds (each relabelled by its own end)"
        )
    ax_r.set_title(title, fontsize=8, loc="left")
    return unstable


def _legend_handles(M: int, thresholds):
    colors = teacher_colors(M)
    handles = [
        Line2D([], [], color=SIM_COLOR, lw=1.6, label=r"simulation, closed-form $\varepsilon$"),
        Line2D([], [], color=SIM_COLOR, marker="o", mfc="none", ls="none", ms=4,
               label=r"simulation, Monte-Carlo $\varepsilon$"),
        Line2D([], [], color="black", ls="--", lw=1.0, label="theory (ODE)"),
        Patch(facecolor="none", edgecolor="0.35", hatch="////",
              label="theory band: ODEs ± predicted noise sd"),
    ]  # fmt: skip
    if thresholds:
        handles.append(Line2D([], [], color="grey", ls="-.", lw=0.8,
                              label="first crossing of a level"))  # fmt: skip
    handles += [
        Line2D([], [], color=colors[n], lw=2.5, label=rf"teacher unit $n = {n}$") for n in range(M)
    ]
    handles.append(Line2D([], [], color=OFF_DIAGONAL, lw=1.5, label=r"$Q_{kl}$, $k \neq l$"))
    return handles


def paint(ds: xr.Dataset, options):
    thresholds = [float(level) for level in ds["level"].values]
    xscale = options.xscale
    n = ds.sizes["run"]
    # dpi as figures.save writes it: the space constrained layout keeps for an outside
    # legend is computed at the figure's dpi (the legend was cut off at another one)
    fig, axes = plt.subplots(n, 3, figsize=(15.5, 3.6 * n + 0.6), squeeze=False,
                             layout="constrained", dpi=130)  # fmt: skip
    symmetric, unstable = [], False
    for i, row in enumerate(axes):
        run = run_values(ds, i)
        unstable |= dynamics_row(row, run, thresholds, xscale)
        _row_note(row[0], (options.row_notes or [])[i : i + 1])
        if run["symmetric"]:
            symmetric.append(float(run["init_perturbation"]))
    M = int(ds["M"].max()) if n else 3
    fig.legend(handles=_legend_handles(M, thresholds), loc="outside right upper", fontsize=8,
               frameon=False, borderaxespad=1.0)  # fmt: skip
    note = (
        "Lines: mean over seeds; bands: min-max over seeds; dashed black: theory (ODE) from "
        "each seed's own initial overlaps; hatched: the theory's band, every seed's ODE "
        "-/+ its predicted finite-N noise sd (linear noise around its own path, "
        "docs/theory.md section 12), min-max over seeds. R panels: colour = teacher unit n, "
        "thick where k = n; Q panels: $Q_{kk}$ in the colour of the teacher its unit ends "
        "on. Units are relabelled per seed so that student k ends on teacher k, the "
        "simulation and the theory each by its own last record (docs/simulation.md)."
    )
    if unstable:
        note += UNSTABLE_END_NOTE
    if symmetric:
        note += (
            f" Nearly symmetric start: the units begin identical up to "
            f"{symmetric[0]:.0%} and first stay together on a plateau. "
            "Which unit then goes to which teacher unit is decided by small differences: in "
            "the simulation also by the random tasks of a finite network (finite-N noise), in "
            "the deterministic theory only by the initial differences between the units. So "
            "the two can end on different teacher units (a row's title says in how many "
            "seeds); with the simulation's labels the theory's R curves would seem to end "
            "lower."
        )
    return finish(fig, ds.attrs["experiment"], options, note)


# --- figure option `row_notes` (issue 13): one note per run, over its eps_meta panel ----------


def _row_note(ax, note: list) -> None:
    """The row's note (options['row_notes'][row], config order; '' or none: no note)."""
    if note and note[0]:
        ax.set_title(textwrap.fill(str(note[0]), 62), fontsize=7.5, loc="left", color="dimgrey")
