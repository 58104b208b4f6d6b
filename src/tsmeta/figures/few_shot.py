"""Few-shot error: the error after adapting on P examples, against alpha and against P.

eps_P = eps_meta + (eta_w^2 / (2 P K)) tr(Sigma_bar A) (docs/theory.md, section 7): the
theory's closed form on its trajectory, the simulation's unbiased Monte Carlo (head adapted
on exactly P examples, `eps_meta_p_mc`) and the closed form on the simulation's measured
order parameters (`eps_meta_p`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.figures.style import (
    ALPHA_LABEL,
    alpha_axis,
    diverged_suffix,
    finish,
    last_finite,
    legend,
    matched,
    nanmean,
    params,
)

EPS_P_LABEL = r"few-shot error $\varepsilon_P$"


def _mc_points(sim):
    """Records with a Monte-Carlo value: alpha, mean over seeds, its standard error."""
    mean = sim["eps_meta_p_mc"].values
    err = sim["eps_meta_p_mc_err"].values
    have = np.isfinite(mean).any(axis=0)
    count = np.isfinite(mean[:, have]).sum(axis=0)
    with np.errstate(all="ignore"):
        se = np.sqrt(np.nansum(err[:, have] ** 2, axis=0)) / np.maximum(count, 1)
    return sim["alpha"].values[have], nanmean(mean[:, have], 0), se


def _fixed_point_excess(p_values, base):
    """eps_P at the P = infinity fixed point (R = Q = T = I, w0 = 0; K = M only): the few-shot
    excess without the shrinkage of the norms that the finite-P term causes."""
    import dataclasses

    from tsmeta.theory import eps_meta_p_closed_form

    I = np.eye(base.K)
    return np.array(
        [
            float(eps_meta_p_closed_form(I, I, I, np.zeros(base.K), dataclasses.replace(base, P=P)))
            for P in p_values
        ]
    )


def draw_few_shot(experiment, options, sims, theories, extra=None):
    """(a) eps_P(alpha) per P: theory line, simulation Monte Carlo with error bars;
    (b) the final eps_P against P: theory curve (the experiment's sweep over P, else the
    theory runs), eps_meta (P = infinity head on the same trajectory), and simulation points
    (Monte Carlo; closed form on the measured order parameters)."""
    extra = extra or {}
    xscale = options.get("xscale", "log")
    theory_of = matched(sims, theories)
    order = np.argsort([params(s).P for s in sims])
    palette = sns.color_palette("viridis", max(len(sims), 2))
    fig, (ax_a, ax_p) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    finals = []  # (P, mc mean, mc se, closed form mean, theory mean)
    for rank, i in enumerate(order):
        sim, theory, P = sims[i], theory_of[i], params(sims[i]).P
        color = palette[rank]
        x = alpha_axis(sim["alpha"].values, xscale)
        if theory is not None:
            ax_a.plot(x, nanmean(theory["eps_meta_p"].values, 0), color=color, lw=1.2)
        a, mean, se = _mc_points(sim)
        ax_a.errorbar(alpha_axis(a, xscale), mean, yerr=se, fmt="o", ms=3.5, color=color,
                      capsize=2, label=f"P={P}{diverged_suffix(sim)}")  # fmt: skip
        closed = last_finite(sim["eps_meta_p"].values[..., None])[..., 0]
        th_final = (
            nanmean(last_finite(theory["eps_meta_p"].values[..., None])[..., 0])
            if theory is not None
            else np.nan
        )
        finals.append((P, mean[-1] if len(mean) else np.nan, se[-1] if len(se) else np.nan,
                       nanmean(closed), th_final))  # fmt: skip
    ax_a.set_xscale(xscale)
    ax_a.set_yscale("log")
    ax_a.set_xlabel(ALPHA_LABEL)
    ax_a.set_ylabel(EPS_P_LABEL)
    ax_a.set_title("lines: theory; points: simulation (Monte Carlo, ± s.e.)", fontsize=9,
                   loc="left")  # fmt: skip
    legend(ax_a, fontsize=7, loc="upper right", ncol=2)

    sweep = extra.get("sweep")
    if sweep is not None and "P" in sweep.dims and "eps_p_final" in sweep:
        P_curve = sweep["P"].values
        ax_p.plot(P_curve, sweep["eps_p_final"].values, color="black", lw=1.4,
                  label="theory, few-shot $\\varepsilon_P$")  # fmt: skip
        label = "theory, $\\varepsilon_{meta}$ (head adapted with $P=\\infty$)"
        ax_p.plot(P_curve, sweep["eps_final"].values, color="grey", ls="--", lw=1.0, label=label)
    elif finals:
        P_th = [f[0] for f in finals]
        ax_p.plot(P_th, [f[4] for f in finals], "k-", lw=1.2, label="theory (runs)")
        P_curve = np.array(P_th, dtype=float)
    else:
        P_curve = np.array([])
    if sims:
        base = params(sims[0])
        if base.K == base.M and len(P_curve) and base.inner_steps == 1:
            ax_p.plot(P_curve, _fixed_point_excess(P_curve, base), color="C3", ls=":", lw=1.0,
                      label="at the $P=\\infty$ fixed point (no shrinkage)")  # fmt: skip
    if finals:
        P_sim = np.array([f[0] for f in finals], dtype=float)
        label = "simulation, Monte Carlo (mean ± s.e.)"
        ax_p.errorbar(P_sim, [f[1] for f in finals], yerr=[f[2] for f in finals], fmt="o",
                      color="C0", capsize=3, label=label)  # fmt: skip
        ax_p.plot(P_sim, [f[3] for f in finals], "s", mfc="none", color="C1",
                  label="closed form on the simulation's overlaps")  # fmt: skip
    ax_p.set_xscale("log")
    ax_p.set_yscale("log")
    ax_p.set_xlabel("training examples per task $P$")
    ax_p.set_ylabel(EPS_P_LABEL + " at the end")
    legend(ax_p, fontsize=7, loc="lower left")
    alpha_end = params(sims[0]).alpha_final if sims else np.nan
    note = (
        f"final = alpha {alpha_end:g}; theory curve from one seed's initial overlaps "
        "(sweep), points: mean over seeds"
    )
    return finish(fig, experiment, options, note)
