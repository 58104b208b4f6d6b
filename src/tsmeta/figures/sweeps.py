"""Figures built from a theory sweep (`extra["sweep"]`, the Dataset of `theory.sweeps.run_sweep`).

- `rates_vs_K`: the minimal learning rates for which eps_meta reaches each level before
  alpha_final, against K, and rescaled by 1/sqrt(K) (the paper's scaling argument says that
  eta ~ sqrt(K), i.e. that eta / sqrt(K) does not depend on K). Simulation spot checks: for
  every simulated run, a marker at its (K, rate), filled if the simulation's mean eps_meta
  (closed form, mean over seeds) fell below the first level before alpha_final.
- `phase_diagram`: heat maps over (eta_J, eta_w) of log10 eps_meta at alpha_final and of
  the alpha at which eps_meta first falls below the first level (hatched where it never
  does), diverged members marked, members whose units did not specialise marked, and the
  line eta_w = 3K. Further grid axes (e.g. init) give one row per value.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from tsmeta.analysis import first_crossing, minimal_rate
from tsmeta.io import params_from_attrs

_SEARCHES = (("", "eta_w", "eta_J"), ("jsearch_", "eta_J", "eta_w"))  # prefix, axis, fixed
_TEX = {"eta_w": r"\eta_w", "eta_J": r"\eta_J"}


def _sweep(extra) -> xr.Dataset:
    ds = (extra or {}).get("sweep")
    if ds is None:
        raise ValueError("this figure needs a theory sweep (experiment key `theory_sweep`)")
    return ds


def _levels(ds: xr.Dataset, options: dict) -> list[float]:
    """Levels of options['thresholds'] that the sweep recorded (all of the sweep's if none)."""
    have = [float(v) for v in ds["level"].values]
    wanted = options.get("thresholds") or have
    levels = [h for w in wanted for h in have if np.isclose(w, h)]
    return levels or have


def _sim_reached(sim: xr.Dataset, level: float) -> bool:
    """Whether the simulation's eps_meta, mean over seeds, fell below level by alpha_final."""
    with np.errstate(all="ignore"):
        eps = np.nanmean(sim["eps_meta"].values, axis=0)
    return bool(np.isfinite(first_crossing(eps, sim["alpha"].values, level)))


def _combos(da: xr.DataArray, skip) -> list[dict]:
    """Every combination of the values of the dims of `da` not in `skip`."""
    dims = [d for d in da.dims if d not in skip]
    values = [list(da[d].values) for d in dims]
    return [dict(zip(dims, v)) for v in itertools.product(*values)] or [{}]


def _label(sel: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel.items())


# --- rates_vs_K ---------------------------------------------------------------------------


def _spread(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max() / v.min()) if len(v) > 1 else np.nan


def draw_rates_vs_K(experiment, options, sims, theories, extra=None):
    ds = _sweep(extra)
    base = params_from_attrs(ds.attrs)
    levels = _levels(ds, options)
    searches = [
        (prefix, axis, fixed)
        for prefix, axis, fixed in _SEARCHES
        if prefix + "eps_min" in ds and axis in ds[prefix + "eps_min"].dims
    ]
    if not searches:
        raise ValueError("rates_vs_K needs a sweep over eta_w (grid) and/or eta_J (search_eta_J)")
    fig, axes = plt.subplots(2, len(searches), figsize=(5.2 * len(searches), 7.2), squeeze=False)
    palette = sns.color_palette("colorblind", 10)
    markers = ["o", "s", "D", "^"]
    for col, (prefix, axis, fixed) in enumerate(searches):
        ax_top, ax_bot = axes[0, col], axes[1, col]
        fixed_value = getattr(base, fixed)
        first = None
        notes = []
        for li, level in enumerate(levels):
            thr = minimal_rate(ds, axis, level, prefix)
            for ci, sel in enumerate(_combos(thr["rate"], skip=("K",))):
                t = thr.sel(sel) if sel else thr
                K = np.asarray(t["K"].values if "K" in t.dims else [base.K], dtype=float)
                rate = np.atleast_1d(t["rate"].values)
                lo = np.atleast_1d(t["lower"].values)
                hi = np.atleast_1d(t["upper"].values)
                color = palette[(li + 2 * ci) % 10]
                name = f"ε={level:g}" + (f" ({_label(sel)})" if sel else "")
                for ax, scale in ((ax_top, np.ones_like(K)), (ax_bot, np.sqrt(K))):
                    y = rate / scale
                    yerr = np.vstack(
                        [
                            np.nan_to_num(y - np.where(np.isfinite(lo), lo, rate) / scale),
                            np.nan_to_num(np.where(np.isfinite(hi), hi, rate) / scale - y),
                        ]
                    )
                    ax.errorbar(
                        K,
                        y,
                        yerr=np.abs(yerr),
                        fmt=markers[li % 4] + "-",
                        color=color,
                        ms=5,
                        lw=1.2,
                        capsize=2,
                        label=name,
                    )
                notes.append(
                    f"ε={level:g}{' ' + _label(sel) if sel else ''}: max/min over K of "
                    f"η/√K {_spread(rate / np.sqrt(K)):.2f}, of η {_spread(rate):.2f}"
                )
                if first is None and np.isfinite(rate).any():
                    first = (K, rate)
        if first is not None:  # reference eta proportional to sqrt(K) through the first point
            K, rate = first
            i = int(np.flatnonzero(np.isfinite(rate))[0])
            Kf = np.linspace(K.min(), K.max(), 50)
            ax_top.plot(
                Kf,
                rate[i] * np.sqrt(Kf / K[i]),
                color="grey",
                ls=":",
                lw=1,
                label=r"$\propto\sqrt{K}$",
            )
            ax_bot.axhline(rate[i] / np.sqrt(K[i]), color="grey", ls=":", lw=1)
        _spot_checks(ax_top, ax_bot, sims, axis, fixed, fixed_value, levels[0])
        ax_bot.text(
            0.02,
            0.02,
            "\n".join(notes),
            transform=ax_bot.transAxes,
            fontsize=7,
            va="bottom",
            color="dimgrey",
        )
        ax_top.set_ylabel(f"minimal ${_TEX[axis]}$")
        ax_bot.set_ylabel(f"minimal ${_TEX[axis]}" + r"\,/\sqrt{K}$")
        ax_top.set_title(
            f"at ${_TEX[fixed]} = {fixed_value:g}$, M = {base.M}, α ≤ {base.alpha_final:g}",
            fontsize=9,
        )
        for ax in (ax_top, ax_bot):
            ax.set_xlabel("K")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
    fig.suptitle(options.get("title") or experiment, fontsize=11)
    fig.text(
        0.01,
        0.005,
        f"theory (ODE) from seed {base.seed_offset}'s initial overlaps; bars: grid bracket of "
        "the threshold; stars: simulation spot checks, filled if the mean ε_meta fell below "
        f"{levels[0]:g} by α_final, open if not",
        fontsize=7,
        color="grey",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    return fig


def _spot_checks(ax_top, ax_bot, sims, axis, fixed, fixed_value, level):
    shown = set()
    for sim in sims or []:
        p = params_from_attrs(sim.attrs)
        if not np.isclose(getattr(p, fixed), fixed_value):
            continue
        reached = _sim_reached(sim, level)
        key = f"simulation: {'reached' if reached else 'not reached'} {level:g}"
        label = None if key in shown else key
        shown.add(key)
        for ax, scale in ((ax_top, 1.0), (ax_bot, np.sqrt(p.K))):
            ax.plot(
                p.K,
                getattr(p, axis) / scale,
                marker="*",
                ms=11,
                ls="none",
                color="crimson",
                mfc="crimson" if reached else "none",
                label=label if ax is ax_top else None,
            )


# --- phase_diagram ------------------------------------------------------------------------


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if len(v) == 1:
        mid = np.array([v[0] - 0.5, v[0] + 0.5]) if not log else np.array([v[0] - 0.1, v[0] + 0.1])
    else:
        inner = 0.5 * (v[1:] + v[:-1])
        mid = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return np.exp(mid) if log else mid


def _is_log(values) -> bool:
    v = np.asarray(values, dtype=float)
    return bool(np.all(v > 0) and v.max() / v.min() > 5)


def specialised(R: np.ndarray) -> np.ndarray:
    """Whether the student units cover min(K, M) distinct teachers: R (..., K, M), NaN-padded."""
    R = np.asarray(R, dtype=float)
    out = np.zeros(R.shape[:-2], dtype=bool)
    for pos in np.ndindex(out.shape):
        r = R[pos]
        r = r[np.isfinite(r).any(axis=1)][:, np.isfinite(r).any(axis=0)]
        if r.size == 0 or not np.isfinite(r).all():
            continue
        out[pos] = len(set(np.abs(r).argmax(axis=1))) == min(r.shape)
    return out


def draw_phase_diagram(experiment, options, sims, theories, extra=None):
    ds = _sweep(extra)
    base = params_from_attrs(ds.attrs)
    for axis in ("eta_J", "eta_w"):
        if axis not in ds["eps_final"].dims:
            raise ValueError(f"phase_diagram needs a sweep grid with an {axis} axis")
    level = _levels(ds, options)[0]
    rows = _combos(ds["eps_final"], skip=("eta_J", "eta_w"))
    fig, axes = plt.subplots(len(rows), 2, figsize=(11.5, 4.3 * len(rows)), squeeze=False)
    xj, yw = ds["eta_J"].values.astype(float), ds["eta_w"].values.astype(float)
    xlog, ylog = _is_log(xj), _is_log(yw)
    xe, ye = _edges(xj, xlog), _edges(yw, ylog)
    XJ, YW = np.meshgrid(xj, yw)
    # colour scales shared by all rows
    with np.errstate(all="ignore"):
        all_log_eps = np.log10(ds["eps_final"].values)
    all_cross = ds["alpha_to_level"].sel(level=level).values
    all_cross = all_cross[np.isfinite(all_cross) & (all_cross > 0)]
    finite_eps = all_log_eps[np.isfinite(all_log_eps)]
    eps_range = (finite_eps.min(), finite_eps.max()) if len(finite_eps) else (None, None)
    norm = LogNorm(all_cross.min(), all_cross.max()) if len(all_cross) else None
    for row, sel in zip(axes, rows):
        d = ds.sel(sel) if sel else ds
        K = int(sel.get("K", base.K))
        eps = d["eps_final"].transpose("eta_w", "eta_J").values
        cross = d["alpha_to_level"].sel(level=level).transpose("eta_w", "eta_J").values
        div = d["diverged"].transpose("eta_w", "eta_J").values.astype(bool)
        spec = specialised(d["R"].transpose("eta_w", "eta_J", "k", "n").values)
        with np.errstate(all="ignore"):
            log_eps = np.log10(eps)
        ax_e, ax_a = row
        m = ax_e.pcolormesh(
            xe,
            ye,
            np.ma.masked_invalid(log_eps),
            cmap="viridis",
            shading="flat",
            vmin=eps_range[0],
            vmax=eps_range[1],
        )
        fig.colorbar(m, ax=ax_e, label=r"$\log_{10}\varepsilon_{\rm meta}$ at $\alpha_{\rm final}$")
        m = ax_a.pcolormesh(
            xe, ye, np.ma.masked_invalid(cross), cmap="magma_r", norm=norm, shading="flat"
        )
        fig.colorbar(
            m, ax=ax_a, label=rf"first $\alpha$ with $\varepsilon_{{\rm meta}} < {level:g}$"
        )
        ax_a.add_patch(
            Rectangle(
                (xe[0], ye[0]),
                xe[-1] - xe[0],
                ye[-1] - ye[0],
                fill=False,
                hatch="///",
                color="lightgrey",
                lw=0,
                zorder=0,
            )
        )
        ax_a.text(
            0.01,
            0.01,
            f"hatched: never below {level:g} by α = {base.alpha_final:g}",
            transform=ax_a.transAxes,
            fontsize=7,
            color="dimgrey",
        )
        for ax in row:
            if div.any():
                ax.plot(
                    XJ[div], YW[div], "x", color="red", ms=6, mew=1.5, ls="none", label="diverged"
                )
            ok = ~spec & ~div
            if ok.any() and ax is ax_e:
                ax.plot(
                    XJ[ok],
                    YW[ok],
                    "o",
                    mfc="none",
                    mec="white",
                    ms=5,
                    ls="none",
                    label="units not specialised",
                )
            ax.axhline(
                3 * K,
                color="white" if ax is ax_e else "black",
                ls="--",
                lw=1,
                label=rf"$\eta_w = 3K = {3 * K}$",
            )
            _phase_spot_checks(ax, sims, sel, level)
            ax.set_xscale("log" if xlog else "linear")
            ax.set_yscale("log" if ylog else "linear")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            ax.set_xlabel(r"$\eta_J$")
            ax.set_ylabel(r"$\eta_w$")
            ax.legend(fontsize=7, loc="upper left", framealpha=0.6)
        shown = {"K": K, "M": base.M, "N": base.N, "init": base.init, **sel}
        ax_e.set_title(_label(shown), fontsize=9, loc="left")
    fig.suptitle(options.get("title") or experiment, fontsize=11)
    fig.text(
        0.01,
        0.005,
        f"theory (ODE) from seed {base.seed_offset}'s initial overlaps; stars: "
        f"simulation spot checks, filled if the mean ε_meta fell below {level:g}",
        fontsize=7,
        color="grey",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    return fig


def _phase_spot_checks(ax, sims, sel, level):
    for sim in sims or []:
        p = params_from_attrs(sim.attrs)
        if any(str(getattr(p, k, v)) != str(v) for k, v in sel.items()):
            continue
        reached = _sim_reached(sim, level)
        ax.plot(
            p.eta_J,
            p.eta_w,
            marker="*",
            ms=12,
            ls="none",
            color="crimson",
            mfc="crimson" if reached else "none",
        )
