"""rates_vs_K: the minimal learning rates for which eps_meta reaches each level before
alpha_final, against K, from a theory sweep (`extra["sweep"]`), with simulation spot checks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.analysis import minimal_rate
from tsmeta.figures.style import (
    TEX,
    combos,
    finish,
    selection_label,
    sim_reached,
    spot_check,
    sweep_levels,
    sweep_of,
)
from tsmeta.io import params_from_attrs

_SEARCHES = (("", "eta_w", "eta_J"), ("jsearch_", "eta_J", "eta_w"))  # prefix, axis, fixed


def _max_over_min(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max() / v.min()) if len(v) > 1 else np.nan


def draw_rates_vs_K(experiment, options, sims, theories, extra=None):
    ds = sweep_of(extra)
    base = params_from_attrs(ds.attrs)
    levels = sweep_levels(ds, options)
    searches = [
        (prefix, axis, fixed)
        for prefix, axis, fixed in _SEARCHES
        if prefix + "eps_min" in ds and axis in ds[prefix + "eps_min"].dims
    ]
    if not searches:
        raise ValueError("rates_vs_K needs a sweep over eta_w (grid) and/or eta_J (search_eta_J)")
    fig, axes = plt.subplots(
        2, len(searches), figsize=(5.2 * len(searches), 7.2), squeeze=False, layout="constrained"
    )
    palette = sns.color_palette("colorblind", 10)
    markers = ["o", "s", "D", "^"]
    for col, (prefix, axis, fixed) in enumerate(searches):
        ax_top, ax_bot = axes[0, col], axes[1, col]
        fixed_value = getattr(base, fixed)
        first = None
        notes = []
        for li, level in enumerate(levels):
            thr = minimal_rate(ds, axis, level, prefix)
            for ci, sel in enumerate(combos(thr["rate"], skip=("K",))):
                t = thr.sel(sel) if sel else thr
                K = np.asarray(t["K"].values if "K" in t.dims else [base.K], dtype=float)
                rate = np.atleast_1d(t["rate"].values)
                lo = np.atleast_1d(t["lower"].values)
                hi = np.atleast_1d(t["upper"].values)
                color = palette[(li + 2 * ci) % 10]
                name = f"ε={level:g}" + (f" ({selection_label(sel)})" if sel else "")
                for ax, scale in ((ax_top, np.ones_like(K)), (ax_bot, np.sqrt(K))):
                    y = rate / scale
                    yerr = np.vstack(
                        [
                            np.nan_to_num(y - np.where(np.isfinite(lo), lo, rate) / scale),
                            np.nan_to_num(np.where(np.isfinite(hi), hi, rate) / scale - y),
                        ]
                    )
                    ax.errorbar(
                        K,
                        y,
                        yerr=np.abs(yerr),
                        fmt=markers[li % 4] + "-",
                        color=color,
                        ms=5,
                        lw=1.2,
                        capsize=2,
                        label=name,
                    )
                notes.append(
                    f"ε={level:g}{' ' + selection_label(sel) if sel else ''}: max/min over K of "
                    f"η/√K {_max_over_min(rate / np.sqrt(K)):.2f}, of η {_max_over_min(rate):.2f}"
                )
                if first is None and np.isfinite(rate).any():
                    first = (K, rate)
        if first is not None:  # reference eta proportional to sqrt(K) through the first point
            K, rate = first
            i = int(np.flatnonzero(np.isfinite(rate))[0])
            Kf = np.linspace(K.min(), K.max(), 50)
            ax_top.plot(
                Kf,
                rate[i] * np.sqrt(Kf / K[i]),
                color="grey",
                ls=":",
                lw=1,
                label=r"$\propto\sqrt{K}$",
            )
            ax_bot.axhline(rate[i] / np.sqrt(K[i]), color="grey", ls=":", lw=1)
        _spot_checks(ax_top, ax_bot, sims, axis, fixed, fixed_value, levels[0])
        ax_bot.text(
            0.02,
            0.02,
            "\n".join(notes),
            transform=ax_bot.transAxes,
            fontsize=7,
            va="bottom",
            color="dimgrey",
        )
        ax_top.set_ylabel(f"minimal ${TEX[axis]}$")
        ax_bot.set_ylabel(f"minimal ${TEX[axis]}" + r"\,/\sqrt{K}$")
        ax_top.set_title(
            f"at ${TEX[fixed]} = {fixed_value:g}$, M = {base.M}, α ≤ {base.alpha_final:g}",
            fontsize=9,
        )
        for ax in (ax_top, ax_bot):
            ax.set_xlabel("K")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
    return finish(
        fig,
        experiment,
        options,
        f"theory (ODE) from seed {base.seed_offset}'s initial overlaps; bars: grid bracket of "
        "the threshold; stars: simulation spot checks, filled if the mean ε_meta fell below "
        f"{levels[0]:g} by α_final, open if not",
    )


def _spot_checks(ax_top, ax_bot, sims, axis, fixed, fixed_value, level):
    shown = set()
    for sim in sims or []:
        p = params_from_attrs(sim.attrs)
        if not np.isclose(getattr(p, fixed), fixed_value):
            continue
        reached = sim_reached(sim, level)
        key = f"simulation: {'reached' if reached else 'not reached'} {level:g}"
        label = None if key in shown else key
        shown.add(key)
        for ax, scale in ((ax_top, 1.0), (ax_bot, np.sqrt(p.K))):
            spot_check(ax, p.K, getattr(p, axis) / scale, reached, label if ax is ax_top else None)
