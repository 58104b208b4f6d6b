"""rates_vs_K: what the figure draws (`figures.rates_vs_K` paints it); the laws are in
docs/theory.md, sections 10 and 11.

(a) The linear escape rate from the unspecialised state, from the ODE's Jacobian
(`theory.stability.escape_rate`) at every (K, eta_J, eta_w) of the sweep (dim `point`),
against x = eta_J eta_w u_std^2 gamma^2 / (K M), with the law c x (c = 1/pi^2 for erf,
`activation(..).escape_factor`; `analysis.rate_law`); the early growth rate of R in the
simulations and their ODEs (dim `growth`, `analysis.early_growth_rate`).
(b) The speed threshold as the e-folds of the linear escape it buys (`analysis.speed_efolds`)
per (K, seed_offset, N), with the law ln sqrt(N) + c.
(c) The precision threshold (minimal eta_w) per (K, seed_offset, N), with the exact head
rates 3K/m of the arrangements reached there (dim `mark`, `activation(..).exact_head_rate`).
(d) The minimal eta_J for every level (dim `shown_level`) with the laws prop. to K and to
sqrt(K) through its first point. Simulations of the searches: spot checks (dim `spot`).

The sweep (`inputs.sweep`, `theory.sweeps.run_sweep`) may have `seed_offset` and `N` axes
(several seeds' initial overlaps, two N); without them the base values are used.
"""

from __future__ import annotations

import json
import math

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.activations import DEFAULT_ACTIVATION, activation
from tsmeta.figure_data import matched, nanmean, required_sweep, sim_reached, sweep_levels
from tsmeta.io import params_from_attrs
from tsmeta.params import RunParams
from tsmeta.theory.stability import escape_rate

STATE_AXES = ("seed_offset", "N")  # sweep axes besides K that the thresholds are shown over
LAW_POINTS = 50  # points of the drawn law lines

LAW_NOTE = (
    r"The law: from R ≈ 0 the overlaps grow at $\eta_J\eta_w\sigma_u^2\gamma^2/(\pi^2KM)$ "
    r"(docs/theory.md, §10-11), so the rates enter as the product $\eta_J\eta_w/K$ and "
    r"'$\eta/\sqrt{K}$' is its symmetric split. Speed: the first stage needs "
    r"ln(1/R0) + c ≈ ln√N + c e-folds, so the minimal $\eta_J$ at fixed $\eta_w$ grows ∝ K and "
    r"with ln√N. Precision: one inner step is exact at $\eta_w$ = 3K/m for a teacher unit "
    r"carried by m student units, so the minimal $\eta_w$ follows "
    "the arrangement reached (3M, flat in K, for even duplication). Theory: ODE sweep from "
    f"the initial overlaps of each seed ({', '.join(STATE_AXES)} axes where present). "
)


def _g(p):
    """The activation table line of a run."""
    return activation(getattr(p, "activation", DEFAULT_ACTIVATION))


def thresholds(ds: xr.Dataset, axis: str, level: float, prefix: str) -> xr.DataArray:
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


def _member_params(base: RunParams, K, eta_J, eta_w) -> RunParams:
    return RunParams.from_dict({**base.to_dict(), "K": int(K), "eta_J": float(eta_J),
                                "eta_w": float(eta_w), "u_mean": 0.0, "seeds": 1})  # fmt: skip


def z_score(diff: float, err: float) -> float:
    """|diff| in units of err (0 where err is 0 and diff is too, NaN where err is not finite)."""
    if not np.isfinite(err):
        return float("nan")
    return abs(diff) / err if err > 0 else (0.0 if diff == 0 else float("inf"))


def _law(ds, base) -> tuple[dict, str]:
    """(a) Jacobian escape rate of every (K, eta_J, eta_w) of the sweep against the law."""
    Ks = [int(k) for k in np.atleast_1d(ds["K"].values)] if "K" in ds.dims else [base.K]
    settings = json.loads(ds.attrs.get("settings_json", "{}"))
    rates = {"eta_w": [float(v) for v in ds["eta_w"].values] if "eta_w" in ds.dims else []}
    rates["eta_J"] = [float(v) for v in ds["eta_J"].values] if "eta_J" in ds.dims else []
    points = [(K, base.eta_J, w) for K in Ks for w in rates["eta_w"]]
    points += [(K, j, base.eta_w) for K in Ks for j in rates["eta_J"]]
    points = points or [(K, base.eta_J, base.eta_w) for K in Ks]
    jac = escape_rate([_member_params(base, *pt) for pt in points], settings)
    scale = base.u_std**2 * base.gamma**2
    x = np.array([j * w * scale / (K * base.M) for K, j, w in points])
    law = np.array(
        [
            analysis.rate_law(j, w, K, base.M, base.u_std, base.gamma, _g(base).name)
            for K, j, w in points
        ]
    )
    xs = np.geomspace(x.min() / 1.5, x.max() * 1.5, LAW_POINTS)
    worst = float(np.nanmax(np.abs(jac / law - 1))) if len(law) else np.nan
    values = {
        "law_K_value": ("law_K", np.array(Ks, dtype=int)),
        "point_K": ("point", np.array([K for K, _, _ in points], dtype=int)),
        "point_x": ("point", x, {"long_name": "eta_J eta_w u_std^2 gamma^2 / (K M)"}),
        "jacobian_rate": ("point", np.asarray(jac, dtype=float),
                          {"long_name": "linear escape rate from R = 0 (ODE Jacobian)",
                           "units": "per unit alpha"}),
        "law_rate": ("point", law,
                     {"long_name": "the law's escape rate", "units": "per unit alpha"}),
        "law_x": ("law_point", xs),
        "law_line": ("law_point", xs * _g(base).escape_factor,
                     {"long_name": "the law: escape factor times x", "units": "per unit alpha"}),
    }  # fmt: skip
    note = rf"(a) Jacobian/law − 1 at most {worst:.1%} over {len(law)} (K, $\eta_J$, $\eta_w$)"
    return values, note


def _growth(sims, theories, Ks) -> tuple[dict, str]:
    """(a) The early growth rate of R in the simulations (u_mean = 0) and their ODEs."""
    found, sim_rows = [], []  # sim_rows: (simulated / law, z off the law, z off its ODE)
    for sim, theory in zip(sims, matched(sims, theories)):
        p = params_from_attrs(sim.attrs)
        if p.u_mean != 0 or "R" not in sim:
            continue  # the law is for u_mean = 0; spot checks may carry eps_meta only
        color = Ks.index(p.K) % 10 if p.K in Ks else -1
        xp = p.eta_J * p.eta_w * p.u_std**2 * p.gamma**2 / (p.K * p.M)
        growth = {}
        for ds_, what in ((sim, "simulation"), (theory, "its ODE")):
            if ds_ is None or "R" not in ds_:
                continue
            g = analysis.mean_error(analysis.early_growth_rate(ds_).values)
            if not np.isfinite(g.mean):
                continue
            growth[what] = g
            found.append((xp, g.mean, g.error, color, what))
        if "simulation" in growth:
            g = growth["simulation"]
            law_p = float(
                analysis.rate_law(p.eta_J, p.eta_w, p.K, p.M, p.u_std, p.gamma, _g(p).name)
            )
            ode = growth.get("its ODE")
            z_ode = (
                np.nan
                if ode is None
                else z_score(g.mean - ode.mean, math.hypot(g.error, ode.error))
            )
            sim_rows.append((g.mean / law_p, z_score(g.mean - law_p, g.error), z_ode))
    x, mean, error, color, what = (list(c) for c in zip(*found)) if found else ([],) * 5
    values = {
        "growth_x": ("growth", np.array(x, dtype=float)),
        "growth_rate": ("growth", np.array(mean, dtype=float),
                        {"long_name": "early growth rate of R, mean over seeds",
                         "units": "per unit alpha"}),
        "growth_rate_se": ("growth", np.array(error, dtype=float)),
        "growth_color": ("growth", np.array(color, dtype=int)),
        "growth_source": ("growth", np.array(what, dtype=str)),
    }  # fmt: skip
    note = ""
    if sim_rows:
        ratio, z_law, z_ode = np.array(sim_rows).T
        note = (f"; simulated early growth of R / law {np.min(ratio):.2f}-{np.max(ratio):.2f} "
                f"over {len(ratio)} runs, at most {np.nanmax(z_law):.1f} standard errors off "
                "the law and "
                + (f"{np.nanmax(z_ode):.1f}" if np.isfinite(z_ode).any() else "–")
                + " off the same estimator on each run's ODE (the estimator reads a few per "
                "cent low: finite-N initial overlaps and Q move the early rate)")  # fmt: skip
    return values, note


def _speed(ds, base, level) -> tuple[xr.Dataset, str]:
    """(b) e-folds bought at the speed threshold, per K, seed and N, against ln sqrt(N) + c."""
    if "jsearch_eps_min" not in ds:
        return xr.Dataset(), "(b) no eta_J search"
    thr = thresholds(ds, "eta_J", level, "jsearch_")
    efolds = analysis.speed_efolds(thr, base.eta_w, thr["K"], base.M, base.alpha_final,
                                   base.u_std, base.gamma)  # fmt: skip
    c = float(np.nanmean(efolds - 0.5 * np.log(thr["N"])))
    mean = xr.DataArray(nanmean(efolds.values, 1), dims=("K", "N"),
                        coords={"K": thr["K"].values, "N": thr["N"].values})  # fmt: skip
    labels = [
        f"N={N}: {thr.sizes['seed_offset']} seeds' overlaps "
        f"({np.isfinite(efolds.sel(N=N).values).sum()} thresholds found)"
        for N in thr["N"].values
    ]
    out = xr.Dataset(
        {
            "speed_efolds": efolds.assign_attrs(
                long_name="e-folds of the linear escape at the speed threshold", units="1"),
            "speed_efolds_mean": mean,
            "speed_law": ("N", 0.5 * np.log(thr["N"].values) + c,
                          {"long_name": "ln sqrt(N) + c", "c": c}),
            "speed_label": ("N", np.array(labels, dtype=str)),
        }
    )  # fmt: skip
    parts = []
    for N in thr["N"].values:
        ok = mean.sel(N=N).values
        ok = ok[np.isfinite(ok)]
        if len(ok) > 1:
            parts.append(f"N={int(N)}: seed-mean e-folds {ok.min():.2f}-{ok.max():.2f} over K")
    Ns = thr["N"].values
    if len(Ns) > 1:
        N1, N2 = int(Ns[0]), int(Ns[-1])
        shift = np.nanmean(mean.values[:, -1] - mean.values[:, 0])
        parts.append(f"shift N={N1}→{N2}: {shift:.2f} measured, "
                     f"{0.5 * math.log(N2 / N1):.2f} = ln√(N2/N1) by the law")  # fmt: skip
    return out, "(b) " + "; ".join(parts) if parts else "(b) no thresholds found"


def _arrangement_marks(ds, base, level) -> tuple[list, dict]:
    """(c) The arrangements reached at the precision threshold per K, and for each the exact
    head rates (K, m, rate) of its teacher units carried by m > 0 student units."""
    labels = analysis.threshold_arrangements(ds, "eta_w", level)
    reached = {}
    for label, k in zip(labels.values.ravel(), np.broadcast_to(
            labels["K"].values.reshape((-1,) + (1,) * (labels.ndim - 1)) if "K" in labels.dims
            else np.array([base.K]), labels.shape).ravel()):  # fmt: skip
        if label:
            reached.setdefault(int(k), set()).add(label)
    marks = {}  # (K, m) -> rate, in order of K, label and m
    for k, found in sorted(reached.items()):
        for label in sorted(found):
            for m in sorted({c for c in analysis.arrangement_counts(label) if c > 0}):
                marks.setdefault((k, m), _g(base).exact_head_rate(k, m))
    return marks, reached


def _precision(ds, base, level) -> tuple[xr.Dataset, str]:
    """(c) minimal eta_w against K, with 3K/m of the arrangements reached at the threshold."""
    if "eps_min" not in ds or "eta_w" not in ds["eps_min"].dims:
        return xr.Dataset(), "(c) no eta_w search"
    thr = thresholds(ds, "eta_w", level, "")
    marks, reached = _arrangement_marks(ds, base, level)
    K = thr["K"].values.astype(float)
    Kf = np.array([K.min() - 0.3, K.max() + 0.3])
    g = _g(base)
    out = xr.Dataset(
        {
            "precision_eta_w": thr.assign_attrs(long_name="minimal eta_w at the base eta_J"),
            "precision_eta_w_mean": (("K", "N"), nanmean(thr.values, 1)),
            "mark_K": ("mark", np.array([k for k, _ in marks], dtype=int)),
            "mark_m": ("mark", np.array([m for _, m in marks], dtype=int)),
            "mark_rate": ("mark", np.array(list(marks.values()), dtype=float),
                          {"long_name": "head rate of an exact inner step for a teacher unit "
                           "carried by m units (3K/m for erf)"}),
            "even_K": ("K_end", Kf),
            "even_rate": ("K_end", [g.exact_head_rate(base.M, 1)] * 2,
                          {"long_name": "3M: units duplicate evenly"}),
            "one_to_one_rate": ("K_end", g.exact_head_rate(Kf, 1),
                                {"long_name": "3K: one to one, K - M units off"}),
        }
    )  # fmt: skip
    found = "; ".join(f"K={k}: {', '.join(sorted(v))}" for k, v in sorted(reached.items()))
    return out, f"(c) arrangements at the threshold: {found or 'none'}"


def _one_at_a_time(ds, levels) -> xr.Dataset:
    """(d) minimal eta_J (mean over seeds) for every level against K; the laws K and sqrt(K)
    through the first finite point."""
    if "jsearch_eps_min" not in ds:
        return xr.Dataset()
    means, first = [], None
    for level in levels:
        thr = thresholds(ds, "eta_J", level, "jsearch_")
        mean = nanmean(thr.values, 1)  # (K, N)
        means.append(mean)
        K = thr["K"].values.astype(float)
        for i in range(mean.shape[1]):
            if first is None and np.isfinite(mean[:, i]).any():
                first = (K, mean[:, i])
    out = xr.Dataset(
        {"jsearch_eta_J_mean": (("shown_level", "K", "N"), np.array(means),
                                {"long_name": "minimal eta_J at the base eta_w, mean over seeds"}),
         "shown_level": ("shown_level", np.array(levels, dtype=float))},
        coords={"K": thr["K"].values, "N": thr["N"].values},
    )  # fmt: skip
    if first is not None:
        K, rate = first
        j = int(np.flatnonzero(np.isfinite(rate))[0])
        Kf = np.linspace(K.min(), K.max(), LAW_POINTS)
        out["law_K_grid"] = ("law_K_point", Kf)
        out["eta_J_linear"] = ("law_K_point", rate[j] * Kf / K[j], {"long_name": "prop. to K"})
        out["eta_J_sqrt"] = ("law_K_point", rate[j] * np.sqrt(Kf / K[j]),
                             {"long_name": "prop. to sqrt(K)"})  # fmt: skip
    return out


def _spot_checks(sims, base, levels) -> dict:
    """Simulations of a search (the base value of the fixed rate, the sweep's alpha_final)
    as stars at (K, their searched rate) in panels c (eta_w) and d (eta_J), filled if their
    mean eps_meta fell below the level; labels once per panel and outcome ("" after)."""
    found = []
    for panel, fixed, axis, level in (("c", "eta_J", "eta_w", levels[0]),
                                      ("d", "eta_w", "eta_J", levels[0])):  # fmt: skip
        shown = set()
        for sim in sims:
            p = params_from_attrs(sim.attrs)
            same = np.isclose(getattr(p, fixed), getattr(base, fixed))
            if not (same and np.isclose(p.alpha_final, base.alpha_final)):
                continue
            reached = sim_reached(sim, level)
            key = f"simulation N={p.N}: {'reached' if reached else 'not reached'} {level:g}"
            found.append((panel, p.K, getattr(p, axis), int(reached), "" if key in shown else key))
            shown.add(key)
    panel, K, rate, reached, label = (list(c) for c in zip(*found)) if found else ([],) * 5
    return {
        "spot_panel": ("spot", np.array(panel, dtype=str)),
        "spot_K": ("spot", np.array(K, dtype=int)),
        "spot_rate": ("spot", np.array(rate, dtype=float)),
        "spot_reached": ("spot", np.array(reached, dtype=np.int8)),
        "spot_label": ("spot", np.array(label, dtype=str)),
    }


def data(inputs, options) -> xr.Dataset:
    """Everything the rates_vs_K figure draws, for `figures.rates_vs_K.paint`."""
    ds = required_sweep(inputs.sweep)
    base = params_from_attrs(ds.attrs)
    levels = sweep_levels(ds, options.thresholds)
    if "eps_min" not in ds and "jsearch_eps_min" not in ds:
        raise ValueError("rates_vs_K needs a sweep over eta_w (grid) and/or eta_J (search_eta_J)")
    sims, theories = list(inputs.sims or []), list(inputs.theories or [])
    law, note_a = _law(ds, base)
    growth, note_growth = _growth(sims, theories, [int(k) for k in law["law_K_value"][1]])
    speed, note_b = _speed(ds, base, levels[0])
    precision, note_c = _precision(ds, base, levels[0])
    out = xr.merge([xr.Dataset({**law, **growth, **_spot_checks(sims, base, levels)}), speed,
                    precision, _one_at_a_time(ds, levels)])  # fmt: skip
    out.attrs = {
        "experiment": inputs.experiment,
        "level": levels[0],
        "eta_J": base.eta_J,
        "eta_w": base.eta_w,
        "alpha_final": base.alpha_final,
        "K_base": base.K,
        "note": LAW_NOTE + " ".join([note_a + note_growth, note_b, note_c]) + ".",
    }
    return out
