"""rates_vs_K: the rates against K as laws (docs/theory.md, sections 10 and 11).

(a) The linear escape rate from the unspecialised state, from the ODE's Jacobian
(`theory.stability.escape_rate`) at every (K, eta_J, eta_w) of the sweep, against
x = eta_J eta_w u_std^2 gamma^2 / (K M): every K on the line x / pi^2 (`analysis.rate_law`);
points: the early growth rate of R in the simulations (mean and standard error over seeds;
`analysis.early_growth_rate`) and, open, in their ODEs from the same initial overlaps.
(b) The speed threshold: the smallest eta_J (at the base eta_w) that brings eps_meta below the
first level by alpha_final, as the e-folds of the linear escape it buys,
alpha_final eta_J eta_w / (pi^2 K M) (`analysis.speed_efolds`), against K, per seed and per N
of the sweep: the law is ln sqrt(N) + c for every K.
(c) The precision threshold: the smallest eta_w (at the base eta_J) that brings eps_meta below
the first level, against K, with the exact head rates 3K/m of the arrangements the units
reach there (`analysis.threshold_arrangements`, `analysis.exact_head_rates`).
(d) The one-at-a-time minimal eta_J against K for every level, with eta_J proportional to K
(the law) and to sqrt(K) through its first point; simulation spot checks as stars.

The sweep (`extra["sweep"]`, `theory.sweeps.run_sweep`) may have `seed_offset` and `N` axes
(several seeds' initial overlaps, two N); without them the base values are used.
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from tsmeta import analysis
from tsmeta.figures.style import (
    empty,
    finish,
    legend,
    matched,
    nanmean,
    sim_reached,
    spot_check,
    sweep_levels,
    sweep_of,
)
from tsmeta.io import params_from_attrs
from tsmeta.params import RunParams

STATE_AXES = ("seed_offset", "N")  # sweep axes besides K that the thresholds are shown over


def _thresholds(ds: xr.Dataset, axis: str, level: float, prefix: str) -> xr.DataArray:
    """Minimal rate (K, seed_offset, N), with the base value where the sweep has no such axis."""
    base = params_from_attrs(ds.attrs)
    rate = analysis.minimal_rate(ds, axis, level, prefix)["rate"]
    for dim in ("K", *STATE_AXES):
        if dim not in rate.dims:
            rate = rate.expand_dims({dim: [getattr(base, dim)]})
    extra = [d for d in rate.dims if d not in ("K", *STATE_AXES)]
    if extra:
        raise ValueError(f"rates_vs_K draws a sweep over K, seed_offset and N; also got {extra}")
    return rate.transpose("K", *STATE_AXES)


def _K_axis(ax, K, log_y: bool = False):
    """Integer K ticks; plain numbers on a log y axis."""
    ax.set_xticks(sorted({int(k) for k in np.atleast_1d(K)}))
    ax.set_xlabel("K")
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())


def _member_params(base: RunParams, K, eta_J, eta_w) -> RunParams:
    return RunParams.from_dict({**base.to_dict(), "K": int(K), "eta_J": float(eta_J),
                                "eta_w": float(eta_w), "u_mean": 0.0, "seeds": 1})  # fmt: skip


def _law_panel(ax, ds, base, sims, theories, palette):
    """(a) Jacobian escape rate of every (K, eta_J, eta_w) of the sweep against the law."""
    from tsmeta.theory.stability import escape_rate

    Ks = [int(k) for k in np.atleast_1d(ds["K"].values)] if "K" in ds.dims else [base.K]
    settings = json.loads(ds.attrs.get("settings_json", "{}"))
    rates = {"eta_w": [float(v) for v in ds["eta_w"].values] if "eta_w" in ds.dims else []}
    rates["eta_J"] = [float(v) for v in ds["eta_J"].values] if "eta_J" in ds.dims else []
    points = [(K, base.eta_J, w) for K in Ks for w in rates["eta_w"]]
    points += [(K, j, base.eta_w) for K in Ks for j in rates["eta_J"]]
    points = points or [(K, base.eta_J, base.eta_w) for K in Ks]
    plist = [_member_params(base, *pt) for pt in points]
    jac = escape_rate(plist, settings)
    scale = base.u_std**2 * base.gamma**2
    x = np.array([j * w * scale / (K * base.M) for K, j, w in points])
    law = np.array(
        [analysis.rate_law(j, w, K, base.M, base.u_std, base.gamma) for K, j, w in points]
    )
    K_of = np.array([K for K, _, _ in points])
    for i, K in enumerate(Ks):
        sel = K_of == K
        ax.plot(x[sel], jac[sel], "o", ms=3, color=palette[i % 10], alpha=0.6,
                label=f"ODE Jacobian, K={K}")  # fmt: skip
    xs = np.geomspace(x.min() / 1.5, x.max() * 1.5, 50)
    ax.plot(xs, xs / math.pi**2, color="black", lw=1, label=r"law $x/\pi^2$")
    worst = float(np.nanmax(np.abs(jac / law - 1))) if len(law) else np.nan
    shown = set()
    sim_rows = []  # (simulated / law, |sim - law| / s.e., |sim - its ODE| / s.e.)
    for sim, theory in zip(sims, matched(sims, theories)):
        p = params_from_attrs(sim.attrs)
        if p.u_mean != 0 or "R" not in sim:
            continue  # the law is for u_mean = 0; spot checks may carry eps_meta only
        color = palette[Ks.index(p.K) % 10] if p.K in Ks else "grey"
        xp = p.eta_J * p.eta_w * p.u_std**2 * p.gamma**2 / (p.K * p.M)
        growth = {}
        for ds_, mfc, what in ((sim, color, "simulation"), (theory, "none", "its ODE")):
            if ds_ is None or "R" not in ds_:
                continue
            g = analysis.mean_error(analysis.early_growth_rate(ds_).values)
            if not np.isfinite(g.mean):
                continue
            growth[what] = g
            label = f"{what}: early growth of R (mean ± s.e.)"
            ax.errorbar(xp, g.mean, yerr=g.error, fmt="D", ms=6, color=color, mfc=mfc,
                        capsize=2, label=None if label in shown else label)  # fmt: skip
            shown.add(label)
        if "simulation" in growth:
            g = growth["simulation"]
            law_p = float(analysis.rate_law(p.eta_J, p.eta_w, p.K, p.M, p.u_std, p.gamma))
            ode = growth.get("its ODE")
            z_ode = np.nan if ode is None else _z(g.mean - ode.mean, math.hypot(g.error, ode.error))
            sim_rows.append((g.mean / law_p, _z(g.mean - law_p, g.error), z_ode))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$x = \eta_J\eta_w\sigma_u^2\gamma^2/(KM)$")
    ax.set_ylabel("linear escape rate from R = 0 (per unit α)")
    ax.set_title("(a) escape rate: every K on one line", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="upper left")
    note = rf"(a) Jacobian/law − 1 at most {worst:.1%} over {len(law)} (K, $\eta_J$, $\eta_w$)"
    if sim_rows:
        ratio, z_law, z_ode = np.array(sim_rows).T
        note += (f"; simulated early growth of R / law {np.min(ratio):.2f}-{np.max(ratio):.2f} "
                 f"over {len(ratio)} runs, at most {np.nanmax(z_law):.1f} standard errors off "
                 "the law and "
                 + (f"{np.nanmax(z_ode):.1f}" if np.isfinite(z_ode).any() else "–")
                 + " off the same estimator on each run's ODE (the estimator reads a few per "
                 "cent low: finite-N initial overlaps and Q move the early rate)")  # fmt: skip
    return note


def _z(diff: float, err: float) -> float:
    """|diff| in units of err (0 where err is 0 and diff is too, NaN where err is not finite)."""
    if not np.isfinite(err):
        return float("nan")
    return abs(diff) / err if err > 0 else (0.0 if diff == 0 else float("inf"))


def _spread_points(ax, K, values, color, marker, label, offset):
    """values (K, seeds): every seed as a small point (shifted by `offset` in K), the mean over
    seeds as a line."""
    for i, k in enumerate(K):
        v = values[i]
        ax.plot(np.full(len(v), k + offset), v, marker, ms=3.5, color=color, alpha=0.5, mfc="none")
    mean = nanmean(values, 1)
    ax.plot(K + offset, mean, marker + "-", ms=5, color=color, lw=1.2, label=label)
    return mean


def _speed_panel(ax, ds, base, level, palette):
    """(b) e-folds bought at the speed threshold, per K, seed and N, against ln sqrt(N) + c."""
    if "jsearch_eps_min" not in ds:
        empty(ax, "no search_eta_J in the sweep")
        return "(b) no eta_J search"
    thr = _thresholds(ds, "eta_J", level, "jsearch_")
    K = thr["K"].values.astype(float)
    Ns = thr["N"].values
    efolds = analysis.speed_efolds(thr, base.eta_w, thr["K"], base.M, base.alpha_final,
                                   base.u_std, base.gamma)  # fmt: skip
    c = float(np.nanmean(efolds - 0.5 * np.log(thr["N"])))
    means = {}
    for i, N in enumerate(Ns):
        color = palette[(i + 5) % 10]
        values = efolds.sel(N=N).values  # (K, seed)
        n = np.isfinite(values).sum()
        means[int(N)] = _spread_points(ax, K, values, color, "o",
                                       f"N={N}: {thr.sizes['seed_offset']} seeds' overlaps "
                                       f"({n} thresholds found)", (i - 0.5) * 0.12)  # fmt: skip
        ax.axhline(0.5 * math.log(N) + c, color=color, ls="--", lw=0.9)
    ax.plot([], [], color="grey", ls="--", lw=0.9, label=rf"law: ln$\sqrt{{N}}$ + c, c = {c:.2f}")
    _K_axis(ax, K)
    ax.set_ylabel(r"e-folds at the threshold: $\alpha_f\,\eta_J\eta_w/(\pi^2KM)$")
    ax.set_title(rf"(b) speed: minimal $\eta_J$ at $\eta_w$ = {base.eta_w:g} "
                 rf"($\varepsilon$ < {level:g} by α = {base.alpha_final:g})",
                 fontsize=9, loc="left")  # fmt: skip
    legend(ax, fontsize=6.5, loc="lower right")
    parts = []
    for N, m in means.items():
        ok = m[np.isfinite(m)]
        if len(ok) > 1:
            parts.append(f"N={N}: seed-mean e-folds {ok.min():.2f}-{ok.max():.2f} over K")
    if len(means) > 1:
        (N1, m1), (N2, m2) = list(means.items())[0], list(means.items())[-1]
        shift = np.nanmean(m2 - m1)
        parts.append(f"shift N={N1}→{N2}: {shift:.2f} measured, "
                     f"{0.5 * math.log(N2 / N1):.2f} = ln√(N2/N1) by the law")  # fmt: skip
    return "(b) " + "; ".join(parts) if parts else "(b) no thresholds found"


def _precision_panel(ax, ds, base, level, sims, palette):
    """(c) minimal eta_w against K, with 3K/m of the arrangements reached at the threshold."""
    if "eps_min" not in ds or "eta_w" not in ds["eps_min"].dims:
        empty(ax, "no eta_w axis in the sweep grid")
        return "(c) no eta_w search"
    thr = _thresholds(ds, "eta_w", level, "")
    K = thr["K"].values.astype(float)
    for i, N in enumerate(thr["N"].values):
        _spread_points(ax, K, thr.sel(N=N).values, palette[(i + 5) % 10], "s",
                       rf"N={N}: minimal $\eta_w$ (seeds)", (i - 0.5) * 0.12)  # fmt: skip
    labels = analysis.threshold_arrangements(ds, "eta_w", level)
    reached = {}
    for label, k in zip(labels.values.ravel(), np.broadcast_to(
            labels["K"].values.reshape((-1,) + (1,) * (labels.ndim - 1)) if "K" in labels.dims
            else np.array([base.K]), labels.shape).ravel()):  # fmt: skip
        if label:
            reached.setdefault(int(k), set()).add(label)
    marked = set()
    for k, found in sorted(reached.items()):
        for label in sorted(found):
            arr_counts = analysis.arrangement_counts(label)
            for m in sorted({c for c in arr_counts if c > 0}):
                rate = 3.0 * k / m
                key = (k, m)
                if key in marked:
                    continue
                marked.add(key)
                ax.plot(
                    [k - 0.3, k + 0.3],
                    [rate, rate],
                    color="crimson",
                    lw=1.6,
                    label="3K/m, m units on one teacher unit" if len(marked) == 1 else None,
                )
                ax.annotate(f"m={m}", (k + 0.32, rate), fontsize=6.5, va="center",
                            color="crimson")  # fmt: skip
    Kf = np.array([K.min() - 0.3, K.max() + 0.3])
    ax.plot(Kf, [3 * base.M] * 2, color="grey", ls=":", lw=1, label="3M (units duplicate evenly)")
    ax.plot(Kf, 3 * Kf, color="grey", ls="-.", lw=1, label="3K (one to one, K − M units off)")
    _spot_checks(ax, sims, base, "eta_J", "eta_w", level)
    _K_axis(ax, K, log_y=True)
    ax.set_ylabel(r"minimal $\eta_w$")
    ax.set_title(rf"(c) precision: minimal $\eta_w$ at $\eta_J$ = {base.eta_J:g} "
                 rf"($\varepsilon$ < {level:g})", fontsize=9, loc="left")  # fmt: skip
    legend(ax, fontsize=6.5, loc="upper left")
    found = "; ".join(f"K={k}: {', '.join(sorted(v))}" for k, v in sorted(reached.items()))
    return f"(c) arrangements at the threshold: {found or 'none'}"


def _one_at_a_time_panel(ax, ds, base, levels, sims, palette):
    """(d) minimal eta_J (seed and N means) for every level against K, with K and sqrt(K)."""
    if "jsearch_eps_min" not in ds:
        empty(ax, "no search_eta_J in the sweep")
        return
    first = None
    for li, level in enumerate(levels):
        thr = _thresholds(ds, "eta_J", level, "jsearch_")
        for i, N in enumerate(thr["N"].values):
            values = thr.sel(N=N).values
            mean = nanmean(values, 1)
            K = thr["K"].values.astype(float)
            ax.plot(K, mean, ["o", "s", "D", "^"][li % 4] + "-", ms=5,
                    color=palette[(i + 5) % 10], lw=1.2, alpha=1 - 0.4 * li,
                    label=rf"$\varepsilon$={level:g}, N={N} (mean over seeds)")  # fmt: skip
            if first is None and np.isfinite(mean).any():
                first = (K, mean)
    if first is not None:
        K, rate = first
        j = int(np.flatnonzero(np.isfinite(rate))[0])
        Kf = np.linspace(K.min(), K.max(), 50)
        ax.plot(Kf, rate[j] * Kf / K[j], color="black", lw=1, label=r"$\propto K$ (law)")
        ax.plot(Kf, rate[j] * np.sqrt(Kf / K[j]), color="grey", ls=":", lw=1,
                label=r"$\propto\sqrt{K}$")  # fmt: skip
    _spot_checks(ax, sims, base, "eta_w", "eta_J", levels[0])
    _K_axis(ax, ds["K"].values if "K" in ds.dims else [base.K], log_y=True)
    ax.set_ylabel(rf"minimal $\eta_J$ at $\eta_w$ = {base.eta_w:g}")
    ax.set_title(r"(d) one at a time: minimal $\eta_J$ grows ∝ K", fontsize=9, loc="left")
    legend(ax, fontsize=6.5, loc="upper left")


def _spot_checks(ax, sims, base, fixed: str, axis: str, level: float):
    """Simulations of a search (the base value of `fixed`, the sweep's alpha_final) as stars
    at (K, their `axis` rate), filled if their mean eps_meta fell below `level`."""
    shown = set()
    for sim in sims:
        p = params_from_attrs(sim.attrs)
        same = np.isclose(getattr(p, fixed), getattr(base, fixed))
        if not (same and np.isclose(p.alpha_final, base.alpha_final)):
            continue
        reached = sim_reached(sim, level)
        key = f"simulation N={p.N}: {'reached' if reached else 'not reached'} {level:g}"
        spot_check(ax, p.K, getattr(p, axis), reached, None if key in shown else key)
        shown.add(key)


def draw_rates_vs_K(experiment, options, sims, theories, extra=None):
    ds = sweep_of(extra)
    base = params_from_attrs(ds.attrs)
    levels = sweep_levels(ds, options)
    if "eps_min" not in ds and "jsearch_eps_min" not in ds:
        raise ValueError("rates_vs_K needs a sweep over eta_w (grid) and/or eta_J (search_eta_J)")
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5), layout="constrained")
    palette = sns.color_palette("colorblind", 10)
    notes = [_law_panel(axes[0, 0], ds, base, sims or [], theories or [], palette)]
    notes.append(_speed_panel(axes[0, 1], ds, base, levels[0], palette))
    notes.append(_precision_panel(axes[1, 0], ds, base, levels[0], sims or [], palette))
    _one_at_a_time_panel(axes[1, 1], ds, base, levels, sims or [], palette)
    law = (
        r"The law: from R ≈ 0 the overlaps grow at $\eta_J\eta_w\sigma_u^2\gamma^2/(\pi^2KM)$ "
        r"(docs/theory.md, §10-11), so the rates enter as the product $\eta_J\eta_w/K$ and "
        r"'$\eta/\sqrt{K}$' is its symmetric split. Speed: the first stage needs "
        r"ln(1/R0) + c ≈ ln√N + c e-folds, so the minimal $\eta_J$ at fixed $\eta_w$ grows ∝ K and "
        r"with ln√N. Precision: one inner step is exact at $\eta_w$ = 3K/m for a teacher unit "
        r"carried by m student units, so the minimal $\eta_w$ follows "
        "the arrangement reached (3M, flat in K, for even duplication). Theory: ODE sweep from "
        f"the initial overlaps of each seed ({', '.join(STATE_AXES)} axes where present). "
    )
    return finish(fig, experiment, options, law + " ".join(notes) + ".")
