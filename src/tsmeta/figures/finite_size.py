"""Finite size: simulation minus theory against N on the first stage, with fitted exponents,
and the escape of the second stage: its deviation from the theory seed by seed and its spread
over seeds against N, with fitted exponents (docs/simulation.md: the Gram sampler makes N up to
1e5-1e6 affordable)."""

from __future__ import annotations

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

DEFAULT_ESCAPE_LEVEL = 1e-3


def escape_deviation(sim, theory, level: float) -> tuple[float, int]:
    """RMS over seeds of the simulation's escape alpha (first alpha with eps_meta < level,
    interpolated) minus the theory's from the same initial overlaps, over the seeds where both
    escape within the run; and how many they are. (NaN, 0) without a theory."""
    if theory is None:
        return float("nan"), 0
    common = np.intersect1d(sim["seed"].values, theory["seed"].values)
    sim, theory = sim.sel(seed=common), theory.sel(seed=common)
    alpha = sim["alpha"].values
    a = analysis.first_crossing(sim["eps_meta"].values, alpha, level)
    b = analysis.first_crossing(theory["eps_meta"].interp(alpha=alpha).values, alpha, level)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return float("nan"), 0
    return float(np.sqrt(np.mean((a[both] - b[both]) ** 2))), int(both.sum())


def finite_size_table(compare, sims, escape_level: float, theories=None) -> dict:
    """Per run (sorted by N): N, first-stage deviations (R, Q, log_eps) from the experiment's
    comparison (`analysis.comparison`, None: no theory), the escape spreads and the escape's
    deviation from the theory (`escape_deviation`; `theories` matched to `sims`)."""
    order = sorted(range(len(sims)), key=lambda i: params(sims[i]).N)
    theories = list(theories) if theories is not None else [None] * len(sims)
    rows = {"index": order, "N": [], "R": [], "Q": [], "log_eps": [], "alpha_end": []}
    for i in order:
        rows["N"].append(params(sims[i]).N)
        if compare is None:
            dev = dict.fromkeys(("R", "Q", "log_eps", "alpha_end"), np.nan)
        else:
            dev = analysis.comparison_row(compare, sims[i].attrs["run_name"])
        for key in ("R", "Q", "log_eps", "alpha_end"):
            rows[key].append(dev[key])
    rows["escape"] = analysis.escape_spread([sims[i] for i in order], escape_level)
    devs = [escape_deviation(sims[i], theories[i], escape_level) for i in order]
    rows["escape_dev"] = [d for d, _ in devs]
    rows["escape_n"] = [n for _, n in devs]
    keep = ("escape", "index")
    return {k: (np.array(v) if k not in keep else v) for k, v in rows.items()}


def _fit_label(name, N, dev) -> str:
    try:
        fit = analysis.fit_power_law(N, dev)
    except ValueError:
        return name
    err = "" if not np.isfinite(fit.stderr) else f" ± {fit.stderr:.2f}"
    return f"{name}: slope {fit.exponent:.2f}{err}"


def _fit_line(ax, N, values, color) -> None:
    try:
        fit = analysis.fit_power_law(N, values)
    except ValueError:
        return
    shown = N[np.isfinite(values) & (np.asarray(values) > 0)]  # the fitted points' range only
    grid = np.geomspace(shown.min(), shown.max(), 20)
    ax.plot(grid, fit.prefactor * grid**fit.exponent, color=color, lw=0.8)


def draw_finite_size(experiment, options, sims, theories, extra=None):
    """eps_meta(alpha) per N with theory; first-stage deviation vs N with power-law fits; the
    seed-to-seed spread of the escape alpha vs N.

    Options: first_stage_level (deviation window up to the theory's first crossing of it),
    first_stage_alpha (a fixed window end instead, the same for every N), escape_level. The
    deviations come from the experiment's compare.nc (`extra["compare"]`), which the
    comparison stage computes with the same window options.
    """
    xscale = options.get("xscale", "log")
    level = options.get("first_stage_level", 0.01)
    fixed_end = options.get("first_stage_alpha")
    escape_level = options.get("escape_level", DEFAULT_ESCAPE_LEVEL)
    theory_of = matched(sims, theories)
    table = finite_size_table((extra or {}).get("compare"), sims, escape_level, theory_of)
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"up to the theory's first crossing of {level:g}"
    )
    palette = sns.color_palette("rocket", max(len(sims), 2))
    fig, (ax_e, ax_d, ax_s) = plt.subplots(1, 3, figsize=(12.5, 4.8), layout="constrained")

    for rank, i in enumerate(table["index"]):
        sim, p = sims[i], params(sims[i])
        x = alpha_axis(sim["alpha"].values, xscale)
        band(ax_e, x, sim["eps_meta"].values, palette[rank], f"N={p.N}{diverged_suffix(sim)}")
        theory_line(ax_e, x, theory_of[i], color=palette[rank], lw=0.8)
    ends = table["alpha_end"][np.isfinite(table["alpha_end"])]
    if len(ends):
        label = "end of the deviation window" + ("" if fixed_end else " (earliest run)")
        ax_e.axvline(ends.min(), color="grey", ls="-.", lw=0.8, label=label)
    eps_axes(ax_e, xscale, [level, escape_level])
    legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("simulation (bands) and theory (dashed)", fontsize=9, loc="left")

    N = table["N"].astype(float)
    if np.isfinite(table["R"]).any():
        for key, name, marker, color in (
            ("R", "R", "o", "C0"), ("Q", "Q", "s", "C1"), ("log_eps", "log10 ε", "^", "C2"),
        ):  # fmt: skip
            ax_d.plot(N, table[key], marker, ls="", color=color,
                      label=_fit_label(name, N, table[key]))  # fmt: skip
            try:
                fit = analysis.fit_power_law(N, table[key])
                grid = np.geomspace(N.min(), N.max(), 20)
                ax_d.plot(grid, fit.prefactor * grid**fit.exponent, color=color, lw=0.8)
            except ValueError:
                pass
        ref = table["log_eps"] if np.isfinite(table["log_eps"]).any() else table["R"]
        k = np.flatnonzero(np.isfinite(ref))
        if len(k):
            grid = np.geomspace(N.min(), N.max(), 20)
            ax_d.plot(grid, ref[k[0]] * (grid / N[k[0]]) ** -0.5, color="grey", ls=":",
                      label=r"$\propto N^{-1/2}$")  # fmt: skip
        ax_d.set_xscale("log")
        ax_d.set_yscale("log")
    else:
        empty(ax_d, "no theory: no deviation")
    ax_d.set_xlabel("N")
    ax_d.set_ylabel("RMS(simulation − theory), first stage")
    ax_d.set_title(window, fontsize=9, loc="left")
    legend(ax_d, fontsize=7)

    esc = table["escape"]
    std = np.array([e.std for e in esc])
    mean = np.array([e.mean for e in esc])
    lo, hi = np.array([e.min for e in esc]), np.array([e.max for e in esc])
    dev = table["escape_dev"]
    ax_s.plot(N, dev, "D", ls="", color="C0",
              label=_fit_label("RMS(simulation − theory)", N, dev))  # fmt: skip
    _fit_line(ax_s, N, dev, "C0")
    ax_s.plot(N, std, "o", ls="", color="C3", label=_fit_label("std over seeds", N, std))
    _fit_line(ax_s, N, std, "C3")
    ax_s.plot(N, hi - lo, "s", ls="", color="C4", label="max − min over seeds")
    for n_, s_, e in zip(N, np.where(np.isfinite(std), std, hi - lo), esc):
        if np.isfinite(s_):
            ax_s.annotate(f"{e.n_escaped}/{e.n_seeds}", (n_, s_), fontsize=6,
                          textcoords="offset points", xytext=(3, 3))  # fmt: skip
    ax_s.set_xscale("log")
    shown = np.r_[std, hi - lo, dev]
    if np.isfinite(shown).any() and np.nanmin(shown) > 0:
        ax_s.set_yscale("log")
    ax_s.set_xlabel("N")
    ax_s.set_ylabel(rf"escape $\alpha$ ($\varepsilon$ < {escape_level:g}): deviation, spread")
    means = ", ".join(f"{m:.3g}" for m in mean if np.isfinite(m)) or "none"
    ax_s.set_title(f"mean escape α: {means}", fontsize=8, loc="left")
    legend(ax_s, fontsize=7)
    if not np.isfinite(shown).any():
        empty(ax_s, f"no seed reached {escape_level:g}")
    return finish(fig, experiment, options,
                   "deviation: RMS over seeds, records in the window (panel title) and entries, "
                   "units relabelled per seed; fitted slopes ± standard error; the escape spread "
                   "counts only the seeds that escape (annotated escaped/seeds); the escape "
                   "deviation is the RMS over seeds of the simulation's escape alpha minus the "
                   "theory's from the same initial overlaps")  # fmt: skip
