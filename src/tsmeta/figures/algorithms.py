"""algorithms: FO-ANIL, ANIL, MAML and FO-MAML, each against its own theory, at several head
rates eta_w; and the escape factor, the early growth rate of R against eta_w / 3K.

The theory of an ANIL or MAML run is the ANIL ODE, of an FO-ANIL or FO-MAML run the FO-ANIL
ODE (docs/theory.md, section 9). At eta_w = 3K the inner step is exact and the two coincide;
below, ANIL leaves the unspecialised state R = 0 faster, above slower, and for eta_w > 6K the
state is linearly stable for ANIL (docs/theory.md, section 10). The numbers come from
`figure_data.algorithms`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.figures.style import ALPHA_LABEL, empty, eps_axes, finish, legend


def draw_band(ax, x, mean, lo, hi, color, label=None):
    """A seed mean with its min-max band (as `style.band`, from precomputed statistics)."""
    ax.plot(x, mean, color=color, lw=1.6, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def paint(ds, options):
    """Per eta_w: eps_meta(alpha) and rms R(alpha) of every algorithm with its own theory;
    last column: the escape factor, theory lines and measured early growth rates."""
    colors = sns.color_palette("colorblind", int(ds.attrs["n_algorithms"]))
    level = float(ds.attrs["level"])
    rates = sorted(set(ds["eta_w"].values.tolist()))
    fig, axes = plt.subplot_mosaic(
        [[f"eps{i}" for i in range(len(rates))] + ["escape"],
         [f"R{i}" for i in range(len(rates))] + ["escape"]],
        figsize=(3.9 * (len(rates) + 1.3), 7.4), layout="constrained",
        width_ratios=[1.0] * len(rates) + [1.3],
    )  # fmt: skip
    for i, eta_w in enumerate(rates):
        ax_e, ax_r = axes[f"eps{i}"], axes[f"R{i}"]
        members = [j for j in range(ds.sizes["run"]) if ds["eta_w"].values[j] == eta_w]
        for j in sorted(members, key=lambda j: int(ds["algorithm_index"].values[j])):
            _run_lines(ax_e, ax_r, ds.isel(run=j), colors[int(ds["algorithm_index"].values[j])])
        run0 = ds.isel(run=members[0])
        eps_axes(ax_e, ds.attrs["xscale"], [level])
        title = rf"$\alpha(\varepsilon_{{\rm meta}} < {level:g})$"
        legend(ax_e, fontsize=6.5, loc="lower left", title=title, title_fontsize=6.5)
        ratio = eta_w / float(run0["eta_w_exact"])
        ax_e.set_title(
            rf"$\eta_w = {eta_w:g}$ ($\eta_w/3K = {ratio:.2g}$), P = {int(run0['P'])}",
            fontsize=9, loc="left",
        )  # fmt: skip
        alpha_max = float(ds.attrs["growth_alpha_max"])
        ax_r.set_yscale("log")
        ax_r.set_xlim(0, min(4 * alpha_max, float(run0["alpha_final"])))
        ax_r.axvline(alpha_max, color="grey", ls=":", lw=0.7)
        ax_r.set_xlabel(ALPHA_LABEL)
        ax_r.set_ylabel(r"rms$_{kn}\, R_{kn}$")
        ax_r.set_title(r"early growth of $R$ (dotted: end of the fit window)", fontsize=8,
                       loc="left")  # fmt: skip
    _escape_panel(axes["escape"], ds, colors)
    title = getattr(options, "title", "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, ds.attrs["note"])


def _run_lines(ax_e, ax_r, run, color):
    """One run's eps_meta and rms R bands and its theory's lines."""
    draw_band(ax_e, run["x"].values, run["eps_mean"].values, run["eps_min"].values,
              run["eps_max"].values, color, str(run["label"].values))  # fmt: skip
    draw_band(ax_r, run["alpha"].values, run["rms_R_mean"].values, run["rms_R_min"].values,
              run["rms_R_max"].values, color)  # fmt: skip
    if np.isfinite(run["alpha_theory"].values).any():
        ax_e.plot(run["x_theory"].values, run["eps_theory"].values, color=color, ls="--", lw=1.0)
        ax_r.plot(run["alpha_theory"].values, run["rms_R_theory"].values, color=color, ls="--",
                  lw=1.0)  # fmt: skip


def _escape_panel(ax, ds, colors):
    """Escape factor against eta_w / 3K: linear theory (lines), early growth rate of R in the
    simulations (filled, mean and min-max over seeds) and in their ODE solutions (open)."""
    if not ds.sizes.get("run"):
        empty(ax, "no runs")
        return
    x = ds["escape_x"].values
    for k in range(ds.sizes["line"]):
        ax.plot(x, ds["escape_theory"].values[k], color=colors[int(ds["line_index"].values[k])],
                lw=1.2, ls="--",
                label=f"{ds['line_label'].values[k]} theory (linear, P = ∞)")  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.axvline(1.0, color="grey", ls=":", lw=0.7)
    ax.axvspan(2.0, x[-1], color="grey", alpha=0.12, lw=0,
               label="ANIL: R = 0 linearly stable (S = 1)")  # fmt: skip
    for j in range(ds.sizes["run"]):
        run = ds.isel(run=j)
        xs, mid = float(run["escape_position"]), float(run["escape_sim_mid"])
        color, marker = colors[int(run["algorithm_index"])], str(run["marker"].values)
        if np.isfinite(mid):
            yerr = [[mid - float(run["escape_sim_min"])], [float(run["escape_sim_max"]) - mid]]
            ax.errorbar(xs, mid, yerr=yerr, fmt=marker, color=color, ms=5, capsize=2, lw=1)
        if np.isfinite(run["alpha_theory"].values).any():
            ax.plot(xs, float(run["escape_ode"]), marker=marker, mfc="none", mec=color, ms=7,
                    ls="none")  # fmt: skip
    shown = dict.fromkeys(sorted(zip(ds["algorithm_index"].values.tolist(),
                                     ds["marker"].values.tolist(),
                                     ds["algorithm_label"].values.tolist())))  # fmt: skip
    for index, marker, label in shown:  # legend entries for the markers
        ax.plot([], [], marker, color=colors[index], label=f"{label} simulation")
    ax.plot([], [], "o", mfc="none", mec="black", label="ODE from the seeds' overlaps")
    ax.set_xlim(0, x[-1])
    ax.set_xlabel(r"$\eta_w / 3K$")
    ax.set_ylabel(r"escape factor: early growth rate of $R$ / FO-ANIL linear rate")
    ax.set_title(r"escape from $R = 0$: ANIL $\times(2 - \eta_w/3K)$", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="lower left")
