"""algorithms: FO-ANIL, ANIL, MAML and FO-MAML, each against its own theory, at several head
rates eta_w; and the escape factor, the early growth rate of R against eta_w / 3K.

The theory of an ANIL or MAML run is the ANIL ODE, of an FO-ANIL or FO-MAML run the FO-ANIL
ODE (docs/theory.md, section 9). At eta_w = 3K the inner step is exact and the two coincide;
below, ANIL leaves the unspecialised state R = 0 faster, above slower, and for eta_w > 6K the
state is linearly stable for ANIL (docs/theory.md, section 10).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.analysis import early_growth_rate, first_crossing
from tsmeta.figures.style import (
    ALPHA_LABEL,
    alpha_axis,
    band,
    diverged_suffix,
    empty,
    eps_axes,
    finish,
    legend,
    matched,
    nanmean,
    params,
    theory_line,
)
from tsmeta.params import ALGORITHMS

COLORS = dict(zip(ALGORITHMS, sns.color_palette("colorblind", len(ALGORITHMS))))
MARKERS = {"fo-anil": "o", "anil": "s", "maml": "D", "fo-maml": "^"}
LABELS = {"fo-anil": "FO-ANIL", "anil": "ANIL", "maml": "MAML", "fo-maml": "FO-MAML"}
THEORY_OF = {"fo-anil": "fo-anil", "fo-maml": "fo-anil", "anil": "anil", "maml": "anil"}


def rms_R(ds) -> np.ndarray:
    """rms over the K x M entries of R, (seed, alpha)."""
    R = ds["R"].transpose("seed", "alpha", ...).values
    return np.sqrt(np.mean(R.reshape(R.shape[0], R.shape[1], -1) ** 2, axis=-1))


def crossing_text(ds, level: float) -> str:
    """alpha at which the seed-mean eps_meta first falls below level, or '> alpha_final'."""
    alpha = ds["alpha"].values
    a = float(first_crossing(nanmean(ds["eps_meta"].values, 0), alpha, level))
    return f"{a:.3g}" if np.isfinite(a) else f">{alpha[-1]:g}"


def linear_rate_fo(p) -> float:
    """FO-ANIL linear escape rate at Q = T = I, P = infinity (the normalisation)."""
    from dataclasses import replace

    from tsmeta.theory.stability import escape_rate

    return escape_rate(replace(p, algorithm="fo-anil"), {"finite_p": False})


def draw_algorithms(experiment, options, sims, theories, extra=None):
    """Per eta_w: eps_meta(alpha) and rms R(alpha) of every algorithm with its own theory;
    last column: the escape factor, theory line and measured early growth rates."""
    level = float((options.get("thresholds") or [0.01])[0])
    xscale = options.get("xscale", "log")
    window = {
        "alpha_max": float(options.get("growth_alpha_max", 2.0)),
        "max_growth": float(options.get("growth_max", 1.5)),
    }
    theory_of = matched(sims, theories)
    plist = [params(s) for s in sims]
    rates = sorted({p.eta_w for p in plist})
    fig, axes = plt.subplot_mosaic(
        [[f"eps{i}" for i in range(len(rates))] + ["escape"],
         [f"R{i}" for i in range(len(rates))] + ["escape"]],
        figsize=(3.9 * (len(rates) + 1.3), 7.4), layout="constrained",
        width_ratios=[1.0] * len(rates) + [1.3],
    )  # fmt: skip
    for i, eta_w in enumerate(rates):
        ax_e, ax_r = axes[f"eps{i}"], axes[f"R{i}"]
        members = [j for j, p in enumerate(plist) if p.eta_w == eta_w]
        for j in sorted(members, key=lambda j: ALGORITHMS.index(plist[j].algorithm)):
            sim, theory, p = sims[j], theory_of[j], plist[j]
            color = COLORS[p.algorithm]
            x = alpha_axis(sim["alpha"].values, xscale)
            label = f"{LABELS[p.algorithm]}{diverged_suffix(sim)}: sim {crossing_text(sim, level)}"
            if theory is not None:
                label += f", theory {crossing_text(theory, level)}"
            band(ax_e, x, sim["eps_meta"].values, color, label)
            band(ax_r, sim["alpha"].values, rms_R(sim), color)
            if theory is not None:
                xt = alpha_axis(theory["alpha"].values, xscale)
                theory_line(ax_e, xt, theory, color=color)
                theory_line(ax_r, theory["alpha"].values, theory, values=rms_R(theory),
                            color=color)  # fmt: skip
        p0 = plist[members[0]]
        eps_axes(ax_e, xscale, [level])
        title = rf"$\alpha(\varepsilon_{{\rm meta}} < {level:g})$"
        legend(ax_e, fontsize=6.5, loc="lower left", title=title, title_fontsize=6.5)
        ax_e.set_title(
            rf"$\eta_w = {eta_w:g}$ ($\eta_w/3K = {eta_w / (3 * p0.K):.2g}$), P = {p0.P}",
            fontsize=9, loc="left",
        )  # fmt: skip
        ax_r.set_yscale("log")
        ax_r.set_xlim(0, min(4 * window["alpha_max"], p0.alpha_final))
        ax_r.axvline(window["alpha_max"], color="grey", ls=":", lw=0.7)
        ax_r.set_xlabel(ALPHA_LABEL)
        ax_r.set_ylabel(r"rms$_{kn}\, R_{kn}$")
        ax_r.set_title(r"early growth of $R$ (dotted: end of the fit window)", fontsize=8,
                       loc="left")  # fmt: skip
    _escape_panel(axes["escape"], sims, theory_of, plist, window)
    return finish(
        fig,
        experiment,
        options,
        "lines: mean over seeds, bands: min-max over seeds; dashed: each algorithm's own "
        "theory (ANIL's ODE for ANIL and MAML, FO-ANIL's for FO-ANIL and FO-MAML) from the "
        "seeds' initial overlaps; legend: alpha at which the seed-mean eps_meta first falls "
        f"below {level:g}. Escape factor: slope of log rms R over alpha <= "
        f"{window['alpha_max']:g} (before rms R grows by {window['max_growth']:g}), divided "
        "by the FO-ANIL linear rate at Q = T = I.",
    )


def _escape_panel(ax, sims, theory_of, plist, window):
    """Escape factor against eta_w / 3K: linear theory (lines), early growth rate of R in the
    simulations (filled, mean and min-max over seeds) and in their ODE solutions (open)."""
    from dataclasses import replace

    from tsmeta.theory.stability import escape_rate

    if not sims:
        empty(ax, "no runs")
        return
    shown = sorted({p.algorithm for p in plist}, key=ALGORITHMS.index)
    p0 = plist[0]
    top = max(p.eta_w for p in plist) / (3 * p0.K)
    x = np.linspace(0.05, max(2.5, 1.15 * top), 120)
    grid = [replace(p0, eta_w=float(v * 3 * p0.K)) for v in x]
    fo = np.array([linear_rate_fo(g) for g in grid])
    for theory in dict.fromkeys(THEORY_OF[a] for a in shown):
        line = escape_rate([replace(g, algorithm=theory) for g in grid], {"finite_p": False})
        ax.plot(x, line / fo, color=COLORS[theory], lw=1.2, ls="--",
                label=f"{LABELS[theory]} theory (linear, P = ∞)")  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.axvline(1.0, color="grey", ls=":", lw=0.7)
    ax.axvspan(2.0, x[-1], color="grey", alpha=0.12, lw=0,
               label="ANIL: R = 0 linearly stable (S = 1)")  # fmt: skip
    offsets = {a: 0.025 * (k - (len(shown) - 1) / 2) for k, a in enumerate(shown)}
    for sim, theory, p in zip(sims, theory_of, plist):
        xs = p.eta_w / (3 * p.K) + offsets[p.algorithm]
        norm = linear_rate_fo(p)
        r = early_growth_rate(sim, **window).values / norm
        color, marker = COLORS[p.algorithm], MARKERS[p.algorithm]
        if np.isfinite(r).any():
            mid = np.nanmean(r)
            ax.errorbar(xs, mid, yerr=[[mid - np.nanmin(r)], [np.nanmax(r) - mid]], fmt=marker,
                        color=color, ms=5, capsize=2, lw=1)  # fmt: skip
        if theory is not None:
            rt = early_growth_rate(theory, **window).values / norm
            ax.plot(xs, np.nanmean(rt), marker=marker, mfc="none", mec=color, ms=7, ls="none")
    for a in shown:  # legend entries for the markers
        ax.plot([], [], MARKERS[a], color=COLORS[a], label=f"{LABELS[a]} simulation")
    ax.plot([], [], "o", mfc="none", mec="black", label="ODE from the seeds' overlaps")
    ax.set_xlim(0, x[-1])
    ax.set_xlabel(r"$\eta_w / 3K$")
    ax.set_ylabel(r"escape factor: early growth rate of $R$ / FO-ANIL linear rate")
    ax.set_title(r"escape from $R = 0$: ANIL $\times(2 - \eta_w/3K)$", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="lower left")
