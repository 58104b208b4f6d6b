"""rates_vs_K: the rates against K as laws (docs/theory.md, sections 10 and 11).

(a) The linear escape rate from the unspecialised state, from the ODE's Jacobian, against
x = eta_J eta_w u_std^2 gamma^2 / (K M): every K on the line x / pi^2; points: the early
growth rate of R in the simulations (mean and standard error over seeds) and, open, in their
ODEs from the same initial overlaps.
(b) The speed threshold as the e-folds of the linear escape it buys, against K, per seed and
per N of the sweep: the law is ln sqrt(N) + c for every K.
(c) The precision threshold, the smallest eta_w, against K, with the exact head rates 3K/m
of the arrangements the units reach there.
(d) The one-at-a-time minimal eta_J against K for every level, with eta_J proportional to K
(the law) and to sqrt(K) through its first point; simulation spot checks as stars.

The numbers come from `figure_data.rates_vs_K`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from tsmeta.figures.style import empty, finish, legend, spot_check


def _K_axis(ax, K, log_y: bool = False):
    """Integer K ticks; plain numbers on a log y axis."""
    ax.set_xticks(sorted({int(k) for k in np.atleast_1d(K)}))
    ax.set_xlabel("K")
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())


def _law_panel(ax, ds, palette):
    """(a) Jacobian escape rates against the law; early growth rates of R."""
    for i, K in enumerate(ds["law_K_value"].values):
        sel = ds["point_K"].values == K
        ax.plot(ds["point_x"].values[sel], ds["jacobian_rate"].values[sel], "o", ms=3,
                color=palette[i % 10], alpha=0.6, label=f"ODE Jacobian, K={K}")  # fmt: skip
    ax.plot(ds["law_x"].values, ds["law_line"].values, color="black", lw=1, label=r"law $x/\pi^2$")
    shown = set()
    for i in range(ds.sizes.get("growth", 0)):
        c = int(ds["growth_color"].values[i])
        color = palette[c] if c >= 0 else "grey"
        what = str(ds["growth_source"].values[i])
        label = f"{what}: early growth of R (mean ± s.e.)"
        ax.errorbar(ds["growth_x"].values[i], ds["growth_rate"].values[i],
                    yerr=ds["growth_rate_se"].values[i], fmt="D", ms=6, color=color,
                    mfc=color if what == "simulation" else "none", capsize=2,
                    label=None if label in shown else label)  # fmt: skip
        shown.add(label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$x = \eta_J\eta_w\sigma_u^2\gamma^2/(KM)$")
    ax.set_ylabel("linear escape rate from R = 0 (per unit α)")
    ax.set_title("(a) escape rate: every K on one line", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="upper left")


def _spread_points(ax, K, values, mean, color, marker, label, offset):
    """values (K, seeds): every seed as a small point (shifted by `offset` in K), the mean over
    seeds as a line."""
    for i, k in enumerate(K):
        v = values[i]
        ax.plot(np.full(len(v), k + offset), v, marker, ms=3.5, color=color, alpha=0.5, mfc="none")
    ax.plot(K + offset, mean, marker + "-", ms=5, color=color, lw=1.2, label=label)


def _speed_panel(ax, ds, palette):
    """(b) e-folds bought at the speed threshold, per K, seed and N, against ln sqrt(N) + c."""
    if "speed_efolds" not in ds:
        empty(ax, "no search_eta_J in the sweep")
        return
    K = ds["K"].values.astype(float)
    for i, N in enumerate(ds["N"].values):
        color = palette[(i + 5) % 10]
        _spread_points(ax, K, ds["speed_efolds"].sel(N=N).values,
                       ds["speed_efolds_mean"].sel(N=N).values, color, "o",
                       str(ds["speed_label"].sel(N=N).values), (i - 0.5) * 0.12)  # fmt: skip
        ax.axhline(float(ds["speed_law"].sel(N=N)), color=color, ls="--", lw=0.9)
    c = float(ds["speed_law"].attrs["c"])
    ax.plot([], [], color="grey", ls="--", lw=0.9, label=rf"law: ln$\sqrt{{N}}$ + c, c = {c:.2f}")
    _K_axis(ax, K)
    level, eta_w, alpha_final = (ds.attrs[k] for k in ("level", "eta_w", "alpha_final"))
    ax.set_ylabel(r"e-folds at the threshold: $\alpha_f\,\eta_J\eta_w/(\pi^2KM)$")
    ax.set_title(rf"(b) speed: minimal $\eta_J$ at $\eta_w$ = {eta_w:g} "
                 rf"($\varepsilon$ < {level:g} by α = {alpha_final:g})",
                 fontsize=9, loc="left")  # fmt: skip
    legend(ax, fontsize=6.5, loc="lower right")


def _precision_panel(ax, ds, palette):
    """(c) minimal eta_w against K, with 3K/m of the arrangements reached at the threshold."""
    if "precision_eta_w" not in ds:
        empty(ax, "no eta_w axis in the sweep grid")
        return
    K = ds["K"].values.astype(float)
    for i, N in enumerate(ds["N"].values):
        _spread_points(ax, K, ds["precision_eta_w"].sel(N=N).values,
                       ds["precision_eta_w_mean"].sel(N=N).values, palette[(i + 5) % 10], "s",
                       rf"N={N}: minimal $\eta_w$ (seeds)", (i - 0.5) * 0.12)  # fmt: skip
    for i in range(ds.sizes["mark"]):
        k, m, rate = (ds[v].values[i] for v in ("mark_K", "mark_m", "mark_rate"))
        ax.plot([k - 0.3, k + 0.3], [rate, rate], color="crimson", lw=1.6,
                label="3K/m, m units on one teacher unit" if i == 0 else None)  # fmt: skip
        ax.annotate(f"m={m}", (k + 0.32, rate), fontsize=6.5, va="center", color="crimson")
    ax.plot(ds["even_K"].values, ds["even_rate"].values, color="grey", ls=":", lw=1,
            label="3M (units duplicate evenly)")  # fmt: skip
    ax.plot(ds["even_K"].values, ds["one_to_one_rate"].values, color="grey", ls="-.", lw=1,
            label="3K (one to one, K − M units off)")  # fmt: skip
    _spot_checks(ax, ds, "c")
    _K_axis(ax, K, log_y=True)
    ax.set_ylabel(r"minimal $\eta_w$")
    ax.set_title(rf"(c) precision: minimal $\eta_w$ at $\eta_J$ = {ds.attrs['eta_J']:g} "
                 rf"($\varepsilon$ < {ds.attrs['level']:g})", fontsize=9, loc="left")  # fmt: skip
    legend(ax, fontsize=6.5, loc="upper left")


def _one_at_a_time_panel(ax, ds, palette):
    """(d) minimal eta_J (seed means) for every level against K, with K and sqrt(K)."""
    if "jsearch_eta_J_mean" not in ds:
        empty(ax, "no search_eta_J in the sweep")
        return
    K = ds["K"].values.astype(float)
    for li, level in enumerate(ds["shown_level"].values):
        for i, N in enumerate(ds["N"].values):
            marker = ["o", "s", "D", "^"][li % 4]
            ax.plot(K, ds["jsearch_eta_J_mean"].values[li, :, i], marker + "-", ms=5,
                    color=palette[(i + 5) % 10], lw=1.2, alpha=1 - 0.4 * li,
                    label=rf"$\varepsilon$={level:g}, N={N} (mean over seeds)")  # fmt: skip
    if "law_K_grid" in ds:
        Kf = ds["law_K_grid"].values
        ax.plot(Kf, ds["eta_J_linear"].values, color="black", lw=1, label=r"$\propto K$ (law)")
        ax.plot(Kf, ds["eta_J_sqrt"].values, color="grey", ls=":", lw=1,
                label=r"$\propto\sqrt{K}$")  # fmt: skip
    _spot_checks(ax, ds, "d")
    _K_axis(ax, K, log_y=True)
    ax.set_ylabel(rf"minimal $\eta_J$ at $\eta_w$ = {ds.attrs['eta_w']:g}")
    ax.set_title(r"(d) one at a time: minimal $\eta_J$ grows ∝ K", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="upper left")


def _spot_checks(ax, ds, panel):
    """The simulations of the panel's search as stars, filled if they reached the level."""
    for i in np.flatnonzero(ds["spot_panel"].values == panel):
        label = str(ds["spot_label"].values[i])
        spot_check(ax, ds["spot_K"].values[i], ds["spot_rate"].values[i],
                   bool(ds["spot_reached"].values[i]), label or None)  # fmt: skip


def paint(ds, options):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5), layout="constrained")
    palette = sns.color_palette("colorblind", 10)
    _law_panel(axes[0, 0], ds, palette)
    _speed_panel(axes[0, 1], ds, palette)
    _precision_panel(axes[1, 0], ds, palette)
    _one_at_a_time_panel(axes[1, 1], ds, palette)
    title = getattr(options, "title", "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, ds.attrs["note"])
