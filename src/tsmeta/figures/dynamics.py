"""Dynamics figures: simulation (mean and spread over seeds) next to the ODE theory.

Student units are relabelled per seed before averaging: units that end on the same teacher
unit in different seeds carry different labels (the specialisation breaks the permutation
symmetry at random), so each seed's units are permuted, and their signs flipped (g is odd),
so that student k ends aligned with teacher k (Hungarian assignment on |R| at the last
record). The simulation and the theory of a seed are each relabelled by their own last
record: which unit ends on which teacher is decided by small differences between the units,
in the simulation by the finite-N noise of the task stream as well, in the deterministic
theory only by the initial differences. From the nearly symmetric start (units identical up
to `init_perturbation`) the two can end on different assignments; relabelling the theory
with the simulation's assignment would then mix different units into one curve.

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

from tsmeta.analysis import alignment, first_crossing
from tsmeta.figures.style import (
    ALPHA_LABEL,
    EPS_LABEL,
    alpha_axis,
    band,
    finish,
    last_finite,
    nanmean,
    params,
    run_label,
    self_aligned,
)

SIM_COLOR = "#7b3294"  # not a teacher colour (those are the colorblind palette)
OFF_DIAGONAL = "0.6"


def teacher_colors(M: int):
    return sns.color_palette("colorblind", max(M, 3))


SPECIALISED = 0.5  # |R| of every matched unit above this: the units have specialised


def _assignment(R: np.ndarray):
    """(order, signs) of `analysis.alignment`, or None where the units have not specialised
    (still on the plateau, where an assignment means nothing)."""
    if not np.isfinite(R).all():
        return None
    order, signs = alignment(R)
    d = min(R.shape)
    matched = np.abs(R[order[:d], np.arange(d)])
    return (tuple(order), tuple(signs)) if matched.min() > SPECIALISED else None


def assignments_differ(sim: xr.Dataset, theory: xr.Dataset | None) -> int:
    """Seeds whose simulation and theory both specialised, onto different teacher units (or
    with other signs): `analysis.alignment` of each one's last finite record."""
    if theory is None:
        return 0
    differ = 0
    for a, b in zip(last_finite(sim["R"].values), last_finite(theory["R"].values)):
        a, b = _assignment(a), _assignment(b)
        differ += a is not None and b is not None and a != b
    return differ


def dynamics_row(axes, sim: xr.Dataset, theory: xr.Dataset | None, thresholds, xscale="log"):
    """eps_meta, R_kn and Q_kl against alpha for one run (simulation and theory)."""
    differ = assignments_differ(sim, theory)
    sim, theory = self_aligned(sim), self_aligned(theory)
    alpha = sim["alpha"].values
    x = alpha_axis(alpha, xscale)
    ax_e, ax_r, ax_q = axes
    K, M = sim.sizes["k"], sim.sizes["n"]
    colors = teacher_colors(M)

    band(ax_e, x, sim["eps_meta"].values, SIM_COLOR)
    mc = sim["eps_meta_mc"].values
    with np.errstate(all="ignore"):
        mc_err = np.sqrt(np.nansum(sim["eps_meta_mc_err"].values ** 2, 0)) / mc.shape[0]
    ax_e.errorbar(x, nanmean(mc, 0), yerr=mc_err, fmt="o", ms=3, mfc="none", color=SIM_COLOR,
                  elinewidth=0.8)  # fmt: skip
    eps_sim = nanmean(sim["eps_meta"].values, 0)
    eps_th = None
    if theory is not None:
        eps_th = nanmean(theory["eps_meta"].values, 0)
        ax_e.plot(x, eps_th, color="black", ls="--", lw=1.0)
    for level in thresholds:
        ax_e.axhline(level, color="grey", ls=":", lw=0.8)
        a_sim = first_crossing(eps_sim, alpha, level)
        if np.isfinite(a_sim):
            ax_e.axvline(a_sim, color=SIM_COLOR, ls="-.", lw=0.7, alpha=0.7)
        if eps_th is not None:
            a_th = first_crossing(eps_th, alpha, level)
            if np.isfinite(a_th):
                ax_e.axvline(a_th, color="black", ls="-.", lw=0.7, alpha=0.5)
        ax_e.annotate(f"{level:g}", (1.0, level), xycoords=("axes fraction", "data"), fontsize=7,
                      ha="right", va="bottom", color="grey")  # fmt: skip
    ax_e.set_yscale("log")
    ax_e.set_ylabel(EPS_LABEL)
    diverged = int(np.nansum(sim["diverged"].values))
    if diverged:
        ax_e.text(0.02, 0.02, f"{diverged} seed(s) diverged", transform=ax_e.transAxes,
                  color="red", fontsize=8)  # fmt: skip

    for k in range(K):
        for n in range(M):
            band(ax_r, x, sim["R"].values[:, :, k, n], colors[n], lw=1.4 if k == n else 0.7)
            if theory is not None:
                ax_r.plot(x, nanmean(theory["R"].values[:, :, k, n], 0), color="black", lw=0.7,
                          ls="--")  # fmt: skip
    ax_r.set_ylabel(r"$R_{kn}$")
    for k in range(K):
        for l in range(k, K):
            color = colors[k] if k == l and k < M else OFF_DIAGONAL
            band(ax_q, x, sim["Q"].values[:, :, k, l], color, lw=1.4 if k == l else 0.7)
            if theory is not None:
                ax_q.plot(x, nanmean(theory["Q"].values[:, :, k, l], 0), color="black", lw=0.7,
                          ls="--")  # fmt: skip
    ax_q.set_ylabel(r"$Q_{kl}$")
    for ax in axes:
        ax.set_xscale(xscale)
        ax.set_xlabel(ALPHA_LABEL)
    title = run_label(sim)
    if differ:
        seeds = sim.sizes["seed"]
        title += (
            f"\ntheory and simulation specialised onto different teacher units in {differ} of "
            f"{seeds} seeds (each relabelled by its own end)"
        )
    ax_r.set_title(title, fontsize=8, loc="left")
    return differ


def _legend_handles(M: int, thresholds):
    colors = teacher_colors(M)
    handles = [
        Line2D([], [], color=SIM_COLOR, lw=1.6, label=r"simulation, closed-form $\varepsilon$"),
        Line2D([], [], color=SIM_COLOR, marker="o", mfc="none", ls="none", ms=4,
               label=r"simulation, Monte-Carlo $\varepsilon$"),
        Line2D([], [], color="black", ls="--", lw=1.0, label="theory (ODE)"),
    ]  # fmt: skip
    if thresholds:
        handles.append(Line2D([], [], color="grey", ls="-.", lw=0.8,
                              label="first crossing of a level"))  # fmt: skip
    handles += [
        Line2D([], [], color=colors[n], lw=2.5, label=rf"teacher unit $n = {n}$") for n in range(M)
    ]
    handles.append(Line2D([], [], color=OFF_DIAGONAL, lw=1.5, label=r"$Q_{kl}$, $k \neq l$"))
    return handles


def draw_dynamics(experiment, options, sims, theories, extra=None):
    thresholds = options.get("thresholds", [0.01, 0.001])
    xscale = options.get("xscale", "log")
    n = len(sims)
    # dpi as figures.save writes it: the space constrained layout keeps for an outside
    # legend is computed at the figure's dpi (the legend was cut off at another one)
    fig, axes = plt.subplots(n, 3, figsize=(15.5, 3.6 * n + 0.6), squeeze=False,
                             layout="constrained", dpi=130)  # fmt: skip
    by_name = {t.attrs["run_name"]: t for t in theories}
    symmetric = []
    for i, (row, sim) in enumerate(zip(axes, sims)):
        dynamics_row(row, sim, by_name.get(sim.attrs["run_name"]), thresholds, xscale)
        _row_note(row[0], (options.get("row_notes") or [])[i : i + 1])
        if params(sim).init == "symmetric":
            symmetric.append(params(sim))
    M = max((s.sizes["n"] for s in sims), default=3)
    fig.legend(handles=_legend_handles(M, thresholds), loc="outside right upper", fontsize=8,
               frameon=False, borderaxespad=1.0)  # fmt: skip
    note = (
        "Lines: mean over seeds; bands: min-max over seeds; dashed black: theory (ODE) from "
        "each seed's own initial overlaps. R panels: colour = teacher unit n, thick where "
        "k = n; Q panels: $Q_{kk}$ in the colour of the teacher its unit ends on. Units are "
        "relabelled per seed so that student k ends on teacher k, the simulation and the "
        "theory each by its own last record (docs/simulation.md)."
    )
    if symmetric:
        note += (
            f" Nearly symmetric start: the units begin identical up to "
            f"{symmetric[0].init_perturbation:.0%} and first stay together on a plateau. "
            "Which unit then goes to which teacher unit is decided by small differences: in "
            "the simulation also by the random tasks of a finite network (finite-N noise), in "
            "the deterministic theory only by the initial differences between the units. So "
            "the two can end on different teacher units (a row's title says in how many "
            "seeds); with the simulation's labels the theory's R curves would seem to end "
            "lower."
        )
    return finish(fig, experiment, options, note)


# --- figure option `row_notes` (issue 13): one note per run, over its eps_meta panel ----------


def _row_note(ax, note: list) -> None:
    """The row's note (options['row_notes'][row], config order; '' or none: no note)."""
    if note and note[0]:
        ax.set_title(textwrap.fill(str(note[0]), 62), fontsize=7.5, loc="left", color="dimgrey")
