"""Few-shot error: the error after adapting on P examples, against alpha and against P.

eps_P = eps_meta + (eta_w^2 / (2 P K)) tr(Sigma_bar A) (docs/theory.md, section 7): the
theory's closed form on its trajectory, the simulation's unbiased Monte Carlo (head adapted
on exactly P examples, `eps_meta_p_mc`) and the closed form on the simulation's measured
order parameters (`eps_meta_p`). The numbers come from `figure_data.few_shot`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.figures.style import ALPHA_LABEL, finish, legend

EPS_P_LABEL = r"few-shot error $\varepsilon_P$"


def paint(ds, options):
    """(a) eps_P(alpha) per P: theory line, simulation Monte Carlo with error bars;
    (b) the final eps_P against P: theory curve, eps_meta (P = infinity head on the same
    trajectory), the fixed point's closed form, and simulation points (Monte Carlo; closed
    form on the measured order parameters)."""
    xscale = ds.attrs["xscale"]
    n_runs = ds.sizes["run"]
    palette = sns.color_palette("viridis", max(n_runs, 2))
    fig, (ax_a, ax_p) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    for rank in range(n_runs):
        run = ds.isel(run=rank)
        color = palette[rank]
        if np.isfinite(run["theory_eps_p"].values).any():
            ax_a.plot(run["x"].values, run["theory_eps_p"].values, color=color, lw=1.2)
        have = np.isfinite(run["mc_eps_p"].values)
        ax_a.errorbar(run["x"].values[have], run["mc_eps_p"].values[have],
                      yerr=run["mc_eps_p_se"].values[have], fmt="o", ms=3.5, color=color,
                      capsize=2, label=str(run["label"].values))  # fmt: skip
    ax_a.set_xscale(xscale)
    ax_a.set_yscale("log")
    ax_a.set_xlabel(ALPHA_LABEL)
    ax_a.set_ylabel(EPS_P_LABEL)
    ax_a.set_title("lines: theory; points: simulation (Monte Carlo, ± s.e.)", fontsize=9,
                   loc="left")  # fmt: skip
    legend(ax_a, fontsize=7, loc="upper right", ncol=2)
    _against_P(ax_p, ds)
    title = getattr(options, "title", "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, ds.attrs["note"])


def _against_P(ax, ds):
    """(b) the final eps_P against P."""
    source = ds.attrs["curve_source"]
    if source == "sweep":
        ax.plot(ds["curve_P"].values, ds["curve_eps_p"].values, color="black", lw=1.4,
                label="theory, few-shot $\\varepsilon_P$")  # fmt: skip
        label = "theory, $\\varepsilon_{meta}$ (head adapted with $P=\\infty$)"
        ax.plot(ds["curve_P"].values, ds["curve_eps"].values, color="grey", ls="--", lw=1.0,
                label=label)  # fmt: skip
    elif source == "runs":
        ax.plot(ds["curve_P"].values, ds["curve_eps_p"].values, "k-", lw=1.2,
                label="theory (runs)")  # fmt: skip
    if "fixed_point_eps_p" in ds:
        ax.plot(ds["curve_P"].values, ds["fixed_point_eps_p"].values, color="C3", ls=":",
                lw=1.0, label="at the $P=\\infty$ fixed point (no shrinkage)")  # fmt: skip
    if ds.sizes["run"]:
        P_sim = ds["P"].values.astype(float)
        label = "simulation, Monte Carlo (mean ± s.e.)"
        ax.errorbar(P_sim, ds["final_mc_eps_p"].values, yerr=ds["final_mc_eps_p_se"].values,
                    fmt="o", color="C0", capsize=3, label=label)  # fmt: skip
        ax.plot(P_sim, ds["final_closed_eps_p"].values, "s", mfc="none", color="C1",
                label="closed form on the simulation's overlaps")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training examples per task $P$")
    ax.set_ylabel(EPS_P_LABEL + " at the end")
    legend(ax, fontsize=7, loc="lower left")
