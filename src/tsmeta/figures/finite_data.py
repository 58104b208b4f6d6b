"""Finite data: simulations at a few P and V against the theory and its variants."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta import analysis
from tsmeta.figures.style import (
    alpha_axis,
    band,
    diverged_suffix,
    empty,
    eps_axes,
    finish,
    legend,
    matched,
    params,
    theory_line,
)


def _pv_label(p) -> str:
    return f"P={p.P}, V={p.V}"


# how a right-hand-side term is named in a legend (rhs.TERMS); others: the name, "-" for "_"
TERM_NAMES = {"finite_v": "finite-V term", "finite_p": "1/P term", "second_order": "2nd order"}


def _term_name(term: str) -> str:
    return TERM_NAMES.get(term, term.replace("_", "-"))


def _variant_label(variant, full) -> str:
    """'theory without <its missing terms>' from the `terms` attributes of both theories."""
    missing = [t for t in full.attrs.get("terms", "").split(",") if t]
    missing = [t for t in missing if t not in variant.attrs.get("terms", "").split(",")]
    return "theory without " + (" and ".join(map(_term_name, missing)) or "changes")


def _compare_label(label: str, variants: dict, full) -> str:
    """Legend name of a theory of compare.nc: 'full', or 'w/o <missing terms>' of a variant."""
    ts = [t for t in variants.get(label, []) if t is not None]
    f = next((t for t in full if t is not None), None)
    if not ts or f is None:
        return label
    return _variant_label(ts[0], f).replace("theory without ", "w/o ")


def draw_finite_data(experiment, options, sims, theories, extra=None):
    """Per run: eps_meta(alpha) of the simulation against the theory and its variants (e.g.
    without the finite-V term); then the first-stage deviation of each theory per run, from
    the experiment's compare.nc (`extra["compare"]`).

    Every variant is compared on the window of the full theory: up to where it first falls
    below first_stage_level, or 0 < alpha <= first_stage_alpha if given.
    """
    extra = extra or {}
    xscale = options.get("xscale", "log")
    level = options.get("first_stage_level", 0.01)
    fixed_end = options.get("first_stage_alpha")
    full = matched(sims, theories)
    variants = {label: matched(sims, ts) for label, ts in (extra.get("variants") or {}).items()}
    styles = [("C3", ":"), ("C2", "-."), ("C4", (0, (5, 1)))]
    n = len(sims)
    ncols = 2 if n == 4 else min(max(n, 1), 3)
    nrows = max(1, math.ceil(n / ncols))
    fig = plt.figure(figsize=(4.6 * ncols, 3.3 * nrows + 3.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.3 * nrows, 3.6])
    axes = np.atleast_1d(top.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.remove()
    for i, (ax, sim) in enumerate(zip(axes, sims)):
        x = alpha_axis(sim["alpha"].values, xscale)
        band(ax, x, sim["eps_meta"].values, "C0", "simulation" + diverged_suffix(sim))
        theory_line(ax, x, full[i], color="black", label="theory (all terms)")
        for ts, (color, ls) in zip(variants.values(), styles):
            if ts[i] is not None and full[i] is not None:
                theory_line(ax, x, ts[i], color=color, ls=ls, lw=1.3,
                            label=_variant_label(ts[i], full[i]))  # fmt: skip
        eps_axes(ax, xscale, [level])
        ax.set_title(_pv_label(params(sim)), fontsize=9, loc="left")
    if n:
        legend(axes[0], fontsize=7, loc="lower left")

    ax_b = bottom.subplots(1, 1)
    compare = extra.get("compare")
    labels = [] if compare is None else [str(t) for t in compare["theory"].values]
    variant_sets = extra.get("variants") or {}
    names = {label: _compare_label(label, variant_sets, full) for label in labels}
    quantities = (("R", "R"), ("Q", "Q"), ("log_eps", r"$\log_{10}\varepsilon$"))
    colors = sns.color_palette("colorblind", 3)
    hatches = ["", "//", "..", "xx"]
    width = 0.8 / max(1, len(quantities) * len(labels))
    any_bar = False
    for i, sim in enumerate(sims):
        for v, label in enumerate(labels):
            dev = analysis.comparison_row(compare, sim.attrs["run_name"], label)
            for q, (key, name) in enumerate(quantities):
                pos = i + (q * len(labels) + v + 0.5) * width - 0.4
                ax_b.bar(pos, dev[key], width, color=colors[q], hatch=hatches[v % 4],
                         edgecolor="k", lw=0.4,
                         label=f"{name}, {names[label]}" if i == 0 else None)  # fmt: skip
                any_bar = any_bar or np.isfinite(dev[key])
    ax_b.set_xticks(range(n))
    ax_b.set_xticklabels([_pv_label(params(s)) for s in sims], fontsize=8)
    ax_b.set_ylabel("RMS(simulation − theory), first stage")
    if any_bar:
        ax_b.set_yscale("log")
        legend(ax_b, fontsize=7, ncol=3)
    else:
        empty(ax_b, "no theory")
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"0 < α ≤ where the full theory first falls below {level:g}"
    )
    terms = full[0].attrs.get("terms_included", "") if n and full[0] is not None else ""
    return finish(fig, experiment, options, f"deviation window: {window}. Theory: {terms}")
