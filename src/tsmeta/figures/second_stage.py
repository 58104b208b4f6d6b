"""second_stage: the seed-to-seed statistics of the escape into the one-to-one alignment.

One run per N (config order), many seeds each, with the ODE integrated from every seed's own
initial overlaps (the theory stage). Panels: (a) the distribution of the escape alpha
(empirical CDF over seeds) in simulation and ODE, per N; (b) simulated against ODE escape,
seed by seed, with the Pearson correlation and its Fisher-z interval per N; (c) the mean
escape against ln N, with the fitted slope and its standard error. The numbers come from
`figure_data.second_stage`; docs/theory.md, section 11, says what sets the scatter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta.figures.style import empty, finish, legend


def paint(ds, options):
    level = float(ds.attrs["escape_level"])
    fig, (ax_d, ax_s, ax_m) = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
    palette = sns.color_palette("colorblind", 10)
    lo, hi = np.inf, 0.0
    for i in range(ds.sizes["run"]):
        run = ds.isel(run=i)
        color, N, seeds = palette[i % 10], int(run["N"]), int(run["n_seeds"])
        sim, ode = run["escape_sim"].values[:seeds], run["escape_ode"].values[:seeds]
        _steps(ax_d, run, "sim", color, "-",
               f"N={N}: simulation ({int(run['escaped_sim'])}/{seeds} escaped)")  # fmt: skip
        _steps(ax_d, run, "ode", color, "--", f"N={N}: ODE ({int(run['escaped_ode'])}/{seeds})")
        if "ecdf_sde_x" in run and int(run["n_sde"]):
            _steps(ax_d, run, "sde", color, ":",
                   f"N={N}: SDE, {int(run['n_sde'])} paths, KS p = {float(run['ks_p']):.2f}, "
                   f"r(SDE, ODE) = {float(run['corr_sde_r']):.2f}")  # fmt: skip
        r, lower, upper = (float(run[f"corr_{k}"]) for k in ("r", "lower", "upper"))
        ax_s.plot(ode, sim, "o", ms=3.5, color=color, alpha=0.75,
                  label=f"N={N}: r = {r:.2f} [{lower:.2f}, {upper:.2f}], "
                  f"{int(run['corr_n'])} seeds")  # fmt: skip
        both = np.concatenate([sim, ode])
        both = both[np.isfinite(both)]
        if len(both):
            lo, hi = min(lo, both.min()), max(hi, both.max())
    ax_d.set_xlabel(rf"escape α (first $\varepsilon_{{\rm meta}}$ < {level:g})")
    ax_d.set_ylabel("fraction of seeds escaped")
    ax_d.set_title("(a) distribution over seeds (dashed: ODE, dotted: SDE)", fontsize=9,
                   loc="left")  # fmt: skip
    legend(ax_d, fontsize=7, loc="lower right")
    if np.isfinite(lo):
        ax_s.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":", label="simulation = ODE")
    ax_s.set_xlabel("ODE from the seed's own initial overlaps: escape α")
    ax_s.set_ylabel("simulation: escape α")
    ax_s.set_title("(b) seed by seed (r: Pearson, 68 % Fisher-z interval)", fontsize=9,
                   loc="left")  # fmt: skip
    legend(ax_s, fontsize=7, loc="upper left")
    for ax in (ax_d, ax_s):
        ax.set_xlim(left=0)
    _mean_panel(ax_m, ds, palette)
    title = getattr(options, "title", "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, ds.attrs["note"])


def _steps(ax, run, what, color, ls, label):
    """The empirical CDF of one run's escape alphas (nothing where no seed escaped)."""
    x, y = run[f"ecdf_{what}_x"].values, run[f"ecdf_{what}_y"].values
    have = np.isfinite(x)
    if have.any():
        ax.step(x[have], y[have], where="post", color=color, ls=ls, lw=1.3, label=label)


def _mean_panel(ax, ds, palette):
    """(c) mean escape and mean first-stage end against ln N, fitted slopes; the first stage's
    law: ln sqrt(N) e-folds of the linear escape rate, slope 1 / (2 r)."""
    if not ds.sizes["run"]:
        empty(ax, "no runs")
        return
    ln_N = ds["ln_N"].values
    # colour, marker, line of the series of `figure_data.second_stage.SERIES`
    looks = ((palette[0], "o", "-"), ("black", "s", "-"), (palette[0], "o", ":"),
             ("black", "s", ":"))  # fmt: skip
    for k, (color, marker, ls) in enumerate(looks):
        mean, err = ds["series_mean"].values[k], ds["series_error"].values[k]
        mfc = color if ls == "-" else "none"
        label = str(ds["series_label"].values[k])
        if not label:  # no fit
            ax.errorbar(ln_N, mean, yerr=err, fmt=marker, color=color, mfc=mfc, ms=5)
            continue
        ax.errorbar(ln_N, mean, yerr=err, fmt=marker, color=color, mfc=mfc, ms=5, capsize=3,
                    label=label)  # fmt: skip
        ax.plot(ds["fit_ln_N"].values, ds["fit_line"].values[k], color=color, lw=0.9, ls=ls)
    if "law_line" in ds:
        slope = float(ds["law_line"].attrs["slope"])
        ax.plot(ds["fit_ln_N"].values, ds["law_line"].values, color="grey", lw=1.2, ls="--",
                label=f"law for the first stage: slope 1/(2r) = {slope:.2f}")  # fmt: skip
    ax.set_xlabel("ln N")
    ax.set_ylabel("mean α over seeds (± s.e.)")
    ax.set_title("(c) mean escape and first-stage end against ln N", fontsize=9, loc="left")
    legend(ax, fontsize=7)
