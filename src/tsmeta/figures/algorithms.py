"""FO-ANIL, ANIL, MAML and FO-MAML in the same setting, with the theory."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

from tsmeta.figures.style import (
    ALPHA_LABEL,
    alpha_axis,
    band,
    diag_overlap,
    diverged_suffix,
    eps_axes,
    finish,
    legend,
    matched,
    params,
    run_label,
    self_aligned,
    theory_line,
)


def draw_algorithms(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) and the diagonal overlap for each algorithm, with the FO-ANIL theory once.

    eps_meta is the error after the head-only adaptation of docs/model.md for every algorithm. The
    theory is the FO-ANIL theory of the FO-ANIL run if there is one, else of the first run.
    """
    xscale = options.get("xscale", "log")
    theory_of = matched(sims, theories)
    plist = [params(s) for s in sims]
    palette = sns.color_palette("colorblind", max(len(sims), 4))
    fig, (ax_e, ax_r) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    for i, (sim, p) in enumerate(zip(sims, plist)):
        sim_al = self_aligned(sim)
        x = alpha_axis(sim["alpha"].values, xscale)
        label = f"{p.algorithm.upper()}{diverged_suffix(sim)}"
        band(ax_e, x, sim["eps_meta"].values, palette[i], label)
        band(ax_r, x, diag_overlap(sim_al), palette[i], label)
    fo = [i for i, p in enumerate(plist) if p.algorithm == "fo-anil" and theory_of[i] is not None]
    with_theory = fo or [i for i, t in enumerate(theory_of) if t is not None]
    if with_theory:
        i = with_theory[0]
        theory = self_aligned(theory_of[i])
        x = alpha_axis(theory["alpha"].values, xscale)
        label = f"theory ({theory.attrs.get('theory_algorithm', 'fo-anil').upper()})"
        theory_line(ax_e, x, theory, color="black", label=label)
        theory_line(ax_r, x, theory, values=diag_overlap(theory), color="black", label=label)
    eps_axes(ax_e, xscale, options.get("thresholds", []))
    legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title(run_label(sims[0]).split(", ", 1)[1] if sims else "", fontsize=8, loc="left")
    ax_r.set_xscale(xscale)
    ax_r.set_xlabel(ALPHA_LABEL)
    ax_r.set_ylabel(r"mean$_k$ $R_{kk}$ (units relabelled per seed)")
    legend(ax_r, fontsize=7, loc="upper left")
    return finish(
        fig,
        experiment,
        options,
        "lines: mean over seeds; bands: min-max over seeds; black dashed: FO-ANIL ODE "
        "theory; eps_meta: head-only adaptation (docs/model.md) for every algorithm",
    )
