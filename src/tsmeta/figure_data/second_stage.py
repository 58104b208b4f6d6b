"""second_stage: what the figure draws (`figures.second_stage` paints it).

One run per N (config order, dim `run`), many seeds each, with the ODE integrated from every
seed's own initial overlaps. Per run and seed: the escape alpha (first alpha with eps_meta
below `escape_level`, `analysis.escape_pairs`) in simulation and ODE; per run: the empirical
CDFs over seeds, the Pearson correlation with its Fisher-z interval; against ln N (dim
`series`): the means with their standard errors and the fitted slopes
(`analysis.fit_log_slope`), and the first stage's law through the ODE's first point.
docs/theory.md, section 11, says what sets the scatter.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from tsmeta import analysis
from tsmeta.figure_data import compare_window, described, matched, params
from tsmeta.params import FIRST_STAGE_LEVEL

SERIES = ("sim_mean", "ode_mean", "first_sim_mean", "first_ode_mean")
FIT_POINTS = 20  # points of each fitted line over ln N


def second_stage_table(
    sims, theories, level: float, first_level: float = FIRST_STAGE_LEVEL
) -> list[dict]:
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


def stochastic_variant(inputs) -> list | None:
    """The theory files of the experiment's SDE variant (kind sde: dim realisation), if any."""
    for theories in inputs.variants.values():
        if theories and "realisation" in theories[0].dims:
            return theories
    return None


def add_sde(rows, sims, sde_theories, level: float) -> None:
    """Per run: the SDE's escape alphas (realisation-major), their correlation with the
    seed's ODE escape next to the simulation's, sd(SDE - ODE) and the two-sample KS p-value
    of the simulated against the SDE escapes (escaped seeds only)."""
    for row, sim, sde in zip(rows, sims, matched(sims, sde_theories)):
        if sde is None:
            continue
        paths = [analysis.escape_pairs(sim, sde.isel(realisation=r), level)["ode"].values
                 for r in range(sde.sizes["realisation"])]  # fmt: skip
        escapes = np.concatenate(paths)
        ode = np.tile(row["ode"], len(paths))
        row["sde"] = escapes
        row["sde_mean"] = analysis.mean_error(escapes)
        row["sde_corr"] = analysis.correlation(escapes, ode)
        row["sde_diff"] = analysis.mean_error(escapes - ode)
        a, b = row["sim"][np.isfinite(row["sim"])], escapes[np.isfinite(escapes)]
        row["ks_p"] = float(stats.ks_2samp(a, b).pvalue) if len(a) and len(b) else np.nan


def ecdf(values, alpha_final) -> tuple[np.ndarray, np.ndarray]:
    """Steps of the empirical CDF over seeds up to alpha_final; seeds that never escape keep
    the curve below 1; empty if no seed escaped."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    done = v[np.isfinite(v)]
    if not len(done):
        return np.array([]), np.array([])
    x = np.concatenate([[0.0], done, [alpha_final]])
    y = np.concatenate([[0.0], np.arange(1, len(done) + 1) / n, [len(done) / n]])
    return x, y


def _padded(rows, width) -> np.ndarray:
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _per_run(rows) -> dict:
    """Escape alphas per seed, CDF steps and correlations, per run."""
    seeds = max((len(row["sim"]) for row in rows), default=0)
    values = {
        "N": ("run", np.array([row["N"] for row in rows], dtype=int)),
        "escape_sim": (("run", "seed"), _padded([row["sim"] for row in rows], seeds)),
        "escape_ode": (("run", "seed"), _padded([row["ode"] for row in rows], seeds)),
        "n_seeds": ("run", np.array([len(row["sim"]) for row in rows], dtype=int)),
    }
    for what in ("sim", "ode"):
        steps = [ecdf(row[what], row["alpha_final"]) for row in rows]
        width = seeds + 2  # 0, every seed, alpha_final
        values[f"ecdf_{what}_x"] = (("run", "step"), _padded([x for x, _ in steps], width))
        values[f"ecdf_{what}_y"] = (("run", "step"), _padded([y for _, y in steps], width))
        values[f"escaped_{what}"] = ("run", np.array([row[f"{what}_mean"].n for row in rows], int))
    for key in ("r", "lower", "upper", "n"):
        values[f"corr_{key}"] = ("run", np.array([getattr(row["corr"], key) for row in rows]))
    if any("sde" in row for row in rows):
        values.update(_sde_values(rows))
    return values


def _sde_values(rows) -> dict:
    """The SDE's escapes, CDF steps, correlation with the ODE and KS p-value per run (NaN
    for runs without an SDE theory)."""
    nan_corr = analysis.correlation([], [])
    width = max(len(row.get("sde", ())) for row in rows)
    steps = [ecdf(row.get("sde", []), row["alpha_final"]) for row in rows]
    values = {
        "escape_sde": (("run", "path"), _padded([row.get("sde", []) for row in rows], width)),
        "ecdf_sde_x": (("run", "sde_step"), _padded([x for x, _ in steps], width + 2)),
        "ecdf_sde_y": (("run", "sde_step"), _padded([y for _, y in steps], width + 2)),
        "ks_p": ("run", np.array([row.get("ks_p", np.nan) for row in rows])),
        "n_sde": ("run", np.array([len(row.get("sde", ())) for row in rows], dtype=int)),
    }
    for key in ("r", "lower", "upper", "n"):
        values[f"corr_sde_{key}"] = (
            "run",
            np.array([getattr(row.get("sde_corr", nan_corr), key) for row in rows]),
        )
    return values


def _against_ln_N(rows, level, first_level) -> tuple[dict, list[str]]:
    """(c) means, errors and fitted lines against ln N, per series; the first stage's law."""
    N = np.array([row["N"] for row in rows], dtype=float)
    x = np.linspace(np.log(N.min()), np.log(N.max()), FIT_POINTS)
    names = (
        rf"simulation, $\varepsilon$ < {level:g}",
        rf"ODE, $\varepsilon$ < {level:g}",
        rf"simulation, $\varepsilon$ < {first_level:g}",
        rf"ODE, $\varepsilon$ < {first_level:g}",
    )
    fits, notes = [], []
    for key, name in zip(SERIES, names):
        mean = np.array([row[key].mean for row in rows])
        err = np.array([row[key].error for row in rows])
        try:
            fit = analysis.fit_log_slope(N, mean, err)
        except ValueError:
            fits.append((np.nan, np.nan, np.nan, ""))
            continue
        fits.append(
            (
                fit.slope,
                fit.stderr,
                fit.intercept,
                f"{name}: slope {fit.slope:.1f} ± {fit.stderr:.1f}",
            )
        )
        notes.append(f"{name}: slope {fit.slope:.1f} ± {fit.stderr:.1f} per ln N")
    slope, stderr, intercept, labels = zip(*fits)
    values = {
        "ln_N": ("run", np.log(N)),
        "series_mean": (
            ("series", "run"),
            np.array([[row[k].mean for row in rows] for k in SERIES]),
        ),
        "series_error": (
            ("series", "run"),
            np.array([[row[k].error for row in rows] for k in SERIES]),
        ),
        "series_label": ("series", np.array(labels, dtype=str)),
        "fit_slope": ("series", np.array(slope)),
        "fit_stderr": ("series", np.array(stderr)),
        "fit_ln_N": ("fit_point", x),
        "fit_line": (
            ("series", "fit_point"),
            np.array(intercept)[:, None] + np.array(slope)[:, None] * x,
        ),
    }
    p = rows[0]["params"]
    rate = float(analysis.rate_law(p.eta_J, p.eta_w, p.K, p.M, p.u_std, p.gamma, p.activation))
    start = rows[0]["first_ode_mean"].mean
    if rate > 0 and np.isfinite(start):  # the law's slope through the ODE's first point
        law = start + 0.5 / rate * (x - x[0])
        values["law_line"] = ("fit_point", law, {"slope": 0.5 / rate})
        notes.append(f"first stage by the law: slope 1/(2r) = {0.5 / rate:.2f} (r = {rate:.3f})")
    return values, notes


def note(rows, level, first_level, notes) -> str:
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
        if "sde" in row:
            cs, ds_ = row["sde_corr"], row["sde_diff"]
            parts[-1] += (
                f"; SDE ({row['sde_mean'].n} escaped paths): sd {row['sde_mean'].std:.1f}, "
                f"sd(SDE − ODE) {ds_.std:.1f}, r with the ODE {cs.r:.2f} "
                f"[{cs.lower:.2f}, {cs.upper:.2f}] (simulation {c.r:.2f}), KS sim vs SDE "
                f"p = {row['ks_p']:.2f}"
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


def data(inputs, options) -> xr.Dataset:
    """Everything the second_stage figure draws, for `figures.second_stage.paint`."""
    level = float(options.escape_level)
    first_level = compare_window(inputs.compare)[0]  # the first stage the comparison measured
    rows = second_stage_table(inputs.sims, inputs.theories, level, first_level)
    sde = stochastic_variant(inputs)
    if sde is not None:
        add_sde(rows, inputs.sims, sde, level)
    values = _per_run(rows)
    notes = []
    if rows:
        fitted, notes = _against_ln_N(rows, level, first_level)
        values.update(fitted)
    ds = xr.Dataset(values)
    described(ds, LONG_NAMES)
    ds.attrs.update(
        experiment=inputs.experiment,
        escape_level=level,
        first_stage_level=first_level,
        note=note(rows, level, first_level, notes),
    )
    return ds


LONG_NAMES = {
    "escape_sim": "simulation: escape alpha (first eps_meta below escape_level)",
    "escape_ode": "ODE from the seed's own initial overlaps: escape alpha",
    "ecdf_sim_y": "fraction of seeds escaped (simulation)",
    "ecdf_ode_y": "fraction of seeds escaped (ODE)",
    "corr_r": "Pearson correlation of simulated and ODE escape over seeds",
    "escape_sde": "SDE (theory kind sde) from the seed's own overlaps: escape alpha per path",
    "corr_sde_r": "Pearson correlation of the SDE's escape with the seed's ODE escape",
    "ks_p": "two-sample KS p-value, simulated against SDE escape alphas",
    "series_mean": "mean alpha over seeds",
    "series_error": "its standard error",
    "fit_line": "weighted least-squares line against ln N",
    "law_line": "the first stage's law: slope 1/(2r) through the ODE's first point",
}
