"""activations: erf, relu and linear side by side, simulation against theory, and the escape
rate from the first plateau of each against eta_J eta_w / (K M).

One row per (K, M): eps_meta, the overlap with the meta-teacher (the subspace for linear) and
the norm Q_kk against alpha; last column: the escape rates. What each activation shows about
the mechanism: docs/theory.md, section 13. The numbers come from `figure_data.activations`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.figures.style import (
    ALPHA_LABEL,
    UNSTABLE_END_NOTE,
    draw_band,
    eps_axes,
    finish,
    legend,
    unstable_end,
    unstable_end_text,
)


def paint(ds, options):
    """Rows (K, M); columns eps_meta, overlap, norm, and (first row) the escape panel."""
    colors = sns.color_palette("colorblind", int(ds.attrs["n_activations"]))
    shapes = sorted({(int(k), int(m)) for k, m in zip(ds["K"].values, ds["M"].values)})
    rows = max(len(shapes), 1)
    fig, axes = plt.subplots(rows, 4, figsize=(15.5, 3.6 * rows), layout="constrained",
                             squeeze=False)  # fmt: skip
    unstable = False
    for i, (K, M) in enumerate(shapes):
        ax_e, ax_o, ax_q = axes[i, :3]
        members = [j for j in range(ds.sizes["run"]) if (ds["K"][j], ds["M"][j]) == (K, M)]
        for j in members:
            run = ds.isel(run=j)
            color = colors[int(run["activation_index"])]
            label = str(run["label"].values)
            rate = float(run["growth_rate_end"])
            if unstable_end(rate, float(np.nanmax(run["alpha"].values))):
                label, unstable = f"{label}, {unstable_end_text(rate)}", True
            for ax, name in ((ax_e, "eps"), (ax_o, "overlap"), (ax_q, "norm")):
                stats = run[name].values
                draw_band(ax, run["x"].values, *stats, color,
                          label if ax is ax_e else None)  # fmt: skip
                ax.plot(run["x_theory"].values, run[name + "_theory"].values, color=color,
                        ls="--", lw=1.0)  # fmt: skip
            if np.isfinite(float(run["plateau_R"])):
                ax_o.axhline(float(run["plateau_R"]), color=color, ls=":", lw=0.8)
        eps_axes(ax_e, ds.attrs["xscale"], [])
        legend(ax_e, fontsize=7, loc="lower left")
        ax_e.set_title(f"K = {K}, M = {M}", fontsize=9, loc="left")
        ax_o.set_ylabel(r"$R_{kk}$ (linear: $\langle\cos^2\theta\rangle$ of the subspaces)")
        ax_q.set_ylabel(r"$Q_{kk}$")
        for ax in (ax_o, ax_q):
            ax.set_xscale(ds.attrs["xscale"])
            ax.set_xlabel(ALPHA_LABEL)
    _escape_panel(axes[0, 3], ds, colors)
    for i in range(1, rows):
        axes[i, 3].set_axis_off()
    title = getattr(options, "title", "")
    note = ds.attrs["note"] + (UNSTABLE_END_NOTE if unstable else "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, note)


def _escape_panel(ax, ds, colors):
    """Theory escape rates (crosses) and measured growth rates (filled: simulation, min-max
    over seeds; open: the ODE solution) against eta_J eta_w / (K M), with the lines
    c x of the activations with a closed-form law (1/pi^2 for erf, 1 for linear)."""
    if not ds.sizes.get("run"):
        ax.set_axis_off()
        return
    x = ds["escape_x"].values
    for j in range(ds.sizes["run"]):
        run = ds.isel(run=j)
        color = colors[int(run["activation_index"])]
        mean, lo, hi = run["escape_sim"].values
        label = f"{run['activation'].values} (K={int(run['K'])})"
        ax.errorbar(x[j], mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color=color,
                    ms=5, capsize=2, label=label)  # fmt: skip
        ax.plot(x[j], float(run["escape_ode"]), "o", mfc="none", color=color, ms=8)
        ax.plot(x[j], float(run["escape_theory"]), "x", color=color, ms=8)
    xs = np.linspace(0, 1.15 * np.nanmax(x), 50)
    for name, factor in (("erf", 1 / np.pi**2), ("linear", 1.0)):
        if name in ds["activation"].values:
            idx = int(ds["activation_index"].values[list(ds["activation"].values).index(name)])
            ax.plot(xs, factor * xs, color=colors[idx], lw=0.8, ls="--")
    ax.set_xlabel(r"$\eta_J\eta_w/(KM)$")
    ax.set_ylabel("escape rate from the first plateau")
    ax.set_title("x: theory, filled: simulation, open: ODE", fontsize=8, loc="left")
    legend(ax, fontsize=6.5, loc="upper left")
