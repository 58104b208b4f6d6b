"""Finite size: simulation minus theory against N on the first stage, with fitted exponents,
and the escape of the second stage: its deviation from the theory seed by seed and its spread
over seeds against N, with fitted exponents; painted from `figure_data.finite_size`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from tsmeta.figure_data import alpha_axis, diverged_note
from tsmeta.figures.style import (
    draw_band,
    empty,
    eps_axes,
    finish,
    legend,
    run_values,
)


def _fit_label(ds: xr.Dataset, name: str, key: str) -> str:
    fit = ds.sel(fit=key)
    if not bool(fit["fit_ok"]):
        return name
    stderr = float(fit["fit_stderr"])
    err = "" if not np.isfinite(stderr) else f" ± {stderr:.2f}"
    return f"{name}: slope {float(fit['fit_exponent']):.2f}{err}"


def _fit_line(ax, ds: xr.Dataset, key: str, color) -> None:
    fit = ds.sel(fit=key)
    if bool(fit["fit_ok"]):
        ax.plot(fit["fit_x"].values, fit["fit_y"].values, color=color, lw=0.8)


def _deviation_panel(ax_d, ds: xr.Dataset, window: str) -> None:
    """First-stage deviation against N with the power-law fits and the N^(-1/2) reference."""
    N = ds["N"].values.astype(float)
    if np.isfinite(ds["R"].values).any():
        for key, name, marker, color in (
            ("R", "R", "o", "C0"), ("Q", "Q", "s", "C1"), ("log_eps", "log10 ε", "^", "C2"),
        ):  # fmt: skip
            ax_d.plot(N, ds[key].values, marker, ls="", color=color,
                      label=_fit_label(ds, name, key))  # fmt: skip
            _fit_line(ax_d, ds, key, color)
        if np.isfinite(ds["reference_y"].values).any():
            ax_d.plot(ds["reference_x"].values, ds["reference_y"].values, color="grey", ls=":",
                      label=r"$\propto N^{-1/2}$")  # fmt: skip
        if "R_predicted" in ds and np.isfinite(ds["R_predicted"].values).any():
            fitted = float(ds["R_prefactor_fitted"])
            predicted = float(ds["R_prefactor_predicted"])
            ax_d.plot(N, ds["R_predicted"].values, "o", mfc="none", ms=8, color="C0",
                      label=rf"R predicted (linear noise): $c N^{{-1/2}}$, c = {predicted:.2f} "
                      f"(fitted to R: {fitted:.2f})")  # fmt: skip
        ax_d.set_xscale("log")
        ax_d.set_yscale("log")
    else:
        empty(ax_d, "no theory: no deviation")
    ax_d.set_xlabel("N")
    ax_d.set_ylabel("RMS(simulation − theory), first stage")
    ax_d.set_title(window, fontsize=9, loc="left")
    legend(ax_d, fontsize=7)


def _escape_panel(ax_s, ds: xr.Dataset, escape_level: float) -> None:
    """The escape's deviation from the theory and its spread over seeds against N."""
    N = ds["N"].values.astype(float)
    std, mean = ds["escape_std"].values, ds["escape_mean"].values
    lo, hi = ds["escape_min"].values, ds["escape_max"].values
    dev = ds["escape_dev"].values
    ax_s.plot(N, dev, "D", ls="", color="C0",
              label=_fit_label(ds, "RMS(simulation − theory)", "escape_dev"))  # fmt: skip
    _fit_line(ax_s, ds, "escape_dev", "C0")
    ax_s.plot(N, std, "o", ls="", color="C3", label=_fit_label(ds, "std over seeds", "escape_std"))
    _fit_line(ax_s, ds, "escape_std", "C3")
    ax_s.plot(N, hi - lo, "s", ls="", color="C4", label="max − min over seeds")
    escaped = zip(ds["escape_n_escaped"].values, ds["escape_n_seeds"].values)
    for n_, s_, (n_escaped, n_seeds) in zip(N, np.where(np.isfinite(std), std, hi - lo), escaped):
        if np.isfinite(s_):
            ax_s.annotate(f"{int(n_escaped)}/{int(n_seeds)}", (n_, s_), fontsize=6,
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


def paint(ds: xr.Dataset, options):
    """eps_meta(alpha) per N with theory; first-stage deviation vs N with power-law fits; the
    seed-to-seed spread of the escape alpha vs N. The deviation window is the experiment's
    `compare` key (up to the theory's first crossing of its level, or a fixed alpha_end)."""
    xscale = options.xscale
    level, escape_level = ds.attrs["first_stage_level"], ds.attrs["escape_level"]
    fixed_end = ds.attrs["first_stage_alpha"]
    fixed_end = None if isinstance(fixed_end, str) else float(fixed_end)
    window = (
        f"0 < α ≤ {fixed_end:g}"
        if fixed_end is not None
        else f"up to the theory's first crossing of {level:g}"
    )
    n_runs = ds.sizes["run"]
    palette = sns.color_palette("rocket", max(n_runs, 2))
    fig, (ax_e, ax_d, ax_s) = plt.subplots(1, 3, figsize=(12.5, 4.8), layout="constrained")

    for rank in range(n_runs):
        run = run_values(ds, rank)
        x = alpha_axis(run["alpha"], xscale)
        label = f"N={int(run['N'])}{diverged_note(run['diverged'], run['seeds'])}"
        draw_band(ax_e, x, run["eps_mean"], run["eps_lo"], run["eps_hi"], palette[rank], label)
        if run["has_theory"]:
            ax_e.plot(x, run["eps_theory"], color=palette[rank], ls="--", lw=0.8)
    ends = ds["alpha_end"].values[np.isfinite(ds["alpha_end"].values)]
    if len(ends):
        label = "end of the deviation window" + ("" if fixed_end else " (earliest run)")
        ax_e.axvline(ends.min(), color="grey", ls="-.", lw=0.8, label=label)
    eps_axes(ax_e, xscale, [level, escape_level])
    legend(ax_e, fontsize=7, loc="lower left")
    ax_e.set_title("simulation (bands) and theory (dashed)", fontsize=9, loc="left")

    _deviation_panel(ax_d, ds, window)
    _escape_panel(ax_s, ds, escape_level)
    return finish(fig, ds.attrs["experiment"], options,
                   "deviation: RMS over seeds, records in the window (panel title) and entries, "
                   "units relabelled per seed; fitted slopes ± standard error; the escape spread "
                   "counts only the seeds that escape (annotated escaped/seeds); the escape "
                   "deviation is the RMS over seeds of the simulation's escape alpha minus the "
                   "theory's from the same initial overlaps")  # fmt: skip
