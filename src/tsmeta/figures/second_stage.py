"""second_stage: the seed-to-seed statistics of the escape into the one-to-one alignment.

One run per N (config order), many seeds each, with the ODE integrated from every seed's own
initial overlaps (the theory stage). The escape alpha is the first alpha with eps_meta below
`escape_level` (`analysis.escape_pairs`). Panels: (a) its distribution (empirical CDF over
seeds) in simulation and ODE, per N; (b) simulated against ODE escape, seed by seed, with
the Pearson correlation and its Fisher-z interval per N; (c) the mean escape against ln N,
with the fitted slope and its standard error (`analysis.fit_log_slope`). docs/theory.md,
section 11, says what sets the scatter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from tsmeta import analysis
from tsmeta.figures.style import empty, finish, legend, matched, params


def second_stage_table(sims, theories, level: float, first_level: float = 0.01) -> list[dict]:
    """Per run (in order): N, the escape pairs (to `level`) and the first-stage pairs (to
    `first_level`), and their statistics; `second`: escape minus first-stage end per seed."""
    rows = []
    for sim, theory in zip(sims, matched(sims, theories)):
        p = params(sim)
        if theory is None:
            raise ValueError(f"second_stage: run {sim.attrs.get('run_name')} has no theory")
        pairs = analysis.escape_pairs(sim, theory, level)
        first = analysis.escape_pairs(sim, theory, first_level)
        sim_alpha, ode_alpha = pairs["sim"].values, pairs["ode"].values
        second_sim = sim_alpha - first["sim"].values
        second_ode = ode_alpha - first["ode"].values
        rows.append(
            {
                "N": p.N,
                "params": p,
                "sim": sim_alpha,
                "ode": ode_alpha,
                "alpha_final": p.alpha_final,
                "sim_mean": analysis.mean_error(sim_alpha),
                "ode_mean": analysis.mean_error(ode_alpha),
                "first_sim_mean": analysis.mean_error(first["sim"].values),
                "first_ode_mean": analysis.mean_error(first["ode"].values),
                "diff": analysis.mean_error(sim_alpha - ode_alpha),
                "corr": analysis.correlation(sim_alpha, ode_alpha),
                "second_corr": analysis.correlation(second_sim, second_ode),
                "second_sim_mean": analysis.mean_error(second_sim),
            }
        )
    return rows


def _ecdf(ax, values, alpha_final, color, ls, label):
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    done = v[np.isfinite(v)]
    if not len(done):
        return
    # steps up to alpha_final; seeds that never escape keep the curve below 1
    x = np.concatenate([[0.0], done, [alpha_final]])
    y = np.concatenate([[0.0], np.arange(1, len(done) + 1) / n, [len(done) / n]])
    ax.step(x, y, where="post", color=color, ls=ls, lw=1.3, label=label)


def draw_second_stage(experiment, options, sims, theories, extra=None):
    level = float(options.get("escape_level", 1e-3))
    first_level = float(options.get("first_stage_level", 0.01))
    rows = second_stage_table(sims, theories, level, first_level)
    fig, (ax_d, ax_s, ax_m) = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
    palette = sns.color_palette("colorblind", 10)
    lo, hi = np.inf, 0.0
    for i, row in enumerate(rows):
        color = palette[i % 10]
        n_sim, n_ode = row["sim_mean"].n, row["ode_mean"].n
        _ecdf(ax_d, row["sim"], row["alpha_final"], color, "-",
              f"N={row['N']}: simulation ({n_sim}/{len(row['sim'])} escaped)")  # fmt: skip
        _ecdf(ax_d, row["ode"], row["alpha_final"], color, "--",
              f"N={row['N']}: ODE ({n_ode}/{len(row['ode'])})")  # fmt: skip
        c = row["corr"]
        ax_s.plot(row["ode"], row["sim"], "o", ms=3.5, color=color, alpha=0.75,
                  label=f"N={row['N']}: r = {c.r:.2f} [{c.lower:.2f}, {c.upper:.2f}], "
                  f"{c.n} seeds")  # fmt: skip
        both = np.concatenate([row["sim"], row["ode"]])
        both = both[np.isfinite(both)]
        if len(both):
            lo, hi = min(lo, both.min()), max(hi, both.max())
    ax_d.set_xlabel(rf"escape α (first $\varepsilon_{{\rm meta}}$ < {level:g})")
    ax_d.set_ylabel("fraction of seeds escaped")
    ax_d.set_title("(a) distribution over seeds (dashed: ODE)", fontsize=9, loc="left")
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
    notes = _mean_panel(ax_m, rows, level, first_level, palette)
    return finish(fig, experiment, options, _note(rows, level, first_level, notes))


def _mean_panel(ax, rows, level, first_level, palette) -> list[str]:
    """(c) mean escape and mean first-stage end against ln N, fitted slopes; the first stage's
    law: ln sqrt(N) e-folds of the linear escape rate, slope 1 / (2 r)."""
    if not rows:
        empty(ax, "no runs")
        return []
    N = np.array([row["N"] for row in rows], dtype=float)
    x = np.linspace(np.log(N.min()), np.log(N.max()), 20)
    notes = []
    series = (
        ("sim_mean", rf"simulation, $\varepsilon$ < {level:g}", palette[0], "o", "-"),
        ("ode_mean", rf"ODE, $\varepsilon$ < {level:g}", "black", "s", "-"),
        ("first_sim_mean", rf"simulation, $\varepsilon$ < {first_level:g}", palette[0], "o", ":"),
        ("first_ode_mean", rf"ODE, $\varepsilon$ < {first_level:g}", "black", "s", ":"),
    )
    for key, name, color, marker, ls in series:
        mean = np.array([row[key].mean for row in rows])
        err = np.array([row[key].error for row in rows])
        mfc = color if ls == "-" else "none"
        try:
            fit = analysis.fit_log_slope(N, mean, err)
        except ValueError:
            ax.errorbar(np.log(N), mean, yerr=err, fmt=marker, color=color, mfc=mfc, ms=5)
            continue
        label = f"{name}: slope {fit.slope:.1f} ± {fit.stderr:.1f}"
        ax.errorbar(np.log(N), mean, yerr=err, fmt=marker, color=color, mfc=mfc, ms=5,
                    capsize=3, label=label)  # fmt: skip
        ax.plot(x, fit.intercept + fit.slope * x, color=color, lw=0.9, ls=ls)
        notes.append(f"{name}: slope {fit.slope:.1f} ± {fit.stderr:.1f} per ln N")
    p = rows[0]["params"]
    rate = float(analysis.rate_law(p.eta_J, p.eta_w, p.K, p.M, p.u_std, p.gamma))
    start = rows[0]["first_ode_mean"].mean
    if rate > 0 and np.isfinite(start):  # the law's slope through the ODE's first point
        ax.plot(x, start + 0.5 / rate * (x - x[0]), color="grey", lw=1.2, ls="--",
                label=f"law for the first stage: slope 1/(2r) = {0.5 / rate:.2f}")  # fmt: skip
        notes.append(f"first stage by the law: slope 1/(2r) = {0.5 / rate:.2f} (r = {rate:.3f})")
    ax.set_xlabel("ln N")
    ax.set_ylabel("mean α over seeds (± s.e.)")
    ax.set_title("(c) mean escape and first-stage end against ln N", fontsize=9, loc="left")
    legend(ax, fontsize=7)
    return notes


def _note(rows, level, first_level, notes) -> str:
    """What the figure measures, with the numbers (the description states what they mean)."""
    parts = []
    for row in rows:
        c, s, o, d = row["corr"], row["sim_mean"], row["ode_mean"], row["diff"]
        c2 = row["second_corr"]
        parts.append(
            f"N={row['N']}: sd {s.std:.1f} (sim), {o.std:.1f} (ODE), {d.std:.1f} (sim − ODE); "
            f"r = {c.r:.2f} ± {(c.upper - c.lower) / 2:.2f} (r² = {c.r**2:.2f}); second stage "
            rf"alone (escape − α at $\varepsilon$ < {first_level:g}): r = {c2.r:.2f}"
        )
    censored = [f"N={row['N']}" for row in rows if row["sim_mean"].n < len(row["sim"])]
    text = (
        rf"Escape: first α with $\varepsilon_{{\rm meta}}$ < {level:g}, log-interpolated between "
        "records; ODE: "
        "integrated from each seed's own initial overlaps. r² is the share of the simulated "
        "seed-to-seed variance that a seed's initial overlaps predict; sd(sim − ODE) is what "
        "the finite-N noise along the way adds (docs/theory.md, section 11). "
        + "; ".join(parts)
        + ". "
        + "; ".join(notes)
        + "."
    )
    if censored:
        text += (
            f" Seeds that did not escape by α_final ({', '.join(censored)}) are left out of "
            "the means and correlations (the means are then biased low)."
        )
    return text
