"""What every figure shares: how a simulation band, a theory line, an eps_meta axis and a spot
check look, how a run is labelled, and how a figure gets its title and note.

Conventions: student units are relabelled per seed (`analysis.align_pair`) before anything is
averaged over seeds; lines are means over seeds, bands min-max over seeds; theories are
dashed; seeds that diverged are NaN from their divergence on, drop out of every mean, and
each legend entry says how many seeds of its run diverged. Every figure uses matplotlib's
constrained layout.
"""

from __future__ import annotations

import itertools
import textwrap
import warnings

import numpy as np
import xarray as xr

from tsmeta.analysis import align_pair
from tsmeta.io import params_from_attrs

EPS_LABEL = r"$\varepsilon_{\rm meta}$"
ALPHA_LABEL = r"$\alpha = t/N$"
TEX = {"eta_J": r"\eta_J", "eta_w": r"\eta_w", "gamma": r"\gamma"}


def params(ds: xr.Dataset):
    return params_from_attrs(ds.attrs)


def alpha_axis(alpha: np.ndarray, xscale: str) -> np.ndarray:
    """alpha as plotted: alpha = 0 has no place on a log axis (NaN there)."""
    x = np.asarray(alpha, dtype=float).copy()
    if xscale == "log":
        x[x <= 0] = np.nan
    return x


def nanmean(values, axis=0) -> np.ndarray:
    """Mean over `axis` ignoring NaN; NaN (no warning) where every value is NaN."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        count = np.isfinite(values).sum(axis=axis)
        total = np.nansum(values, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def band(ax, x, values, color, label=None, lw=1.6, alpha_fill=0.2):
    """Mean over seeds (axis 0) with the min-max band; quiet where every seed is NaN."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN records: diverged seeds
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    ax.plot(x, nanmean(values, 0), color=color, lw=lw, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha_fill, lw=0)


def theory_line(ax, x, theory: xr.Dataset | None, values=None, color="black", label=None,
                ls="--", lw=1.0):  # fmt: skip
    """Mean over seeds of a theory quantity (default eps_meta) as a line."""
    if theory is None:
        return
    values = theory["eps_meta"].values if values is None else values
    ax.plot(x, nanmean(values, 0), color=color, ls=ls, lw=lw, label=label)


def eps_axes(ax, xscale: str, thresholds=()):
    for level in thresholds:
        ax.axhline(level, color="grey", ls=":", lw=0.7)
    ax.set_yscale("log")
    ax.set_xscale(xscale)
    ax.set_xlabel(ALPHA_LABEL)
    ax.set_ylabel(EPS_LABEL)


def legend(ax, **kw):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def finish(fig, experiment, options, note):
    """Title and a grey note under the axes (inside the constrained layout), wrapped to the
    figure's width."""
    fig.suptitle(options.get("title") or experiment, fontsize=11)
    width = max(60, int(fig.get_figwidth() * 17))  # characters of 7-pt text per line
    fig.supxlabel(textwrap.fill(note, width), fontsize=7, color="grey")
    return fig


def run_label(sim: xr.Dataset) -> str:
    p = params(sim)
    parts = [f"{p.algorithm.upper()}", f"K={p.K}", f"M={p.M}", f"N={p.N}"]
    parts += [rf"$\eta_J$={p.eta_J:g}", rf"$\eta_w$={p.eta_w:g}"]
    if p.init != "random":
        parts.append(f"init={p.init}")
    if p.gamma != 1:
        parts.append(rf"$\gamma$={p.gamma:g}")
    parts.append(f"{p.seeds} seeds")
    return ", ".join(parts)


def diverged_suffix(sim: xr.Dataset) -> str:
    n = int(np.nansum(sim["diverged"].values)) if "diverged" in sim else 0
    return f" ({n}/{sim.sizes['seed']} diverged)" if n else ""


def matched(sims, theories) -> list[xr.Dataset | None]:
    """The theory of each simulation: same run_name, else same position, else None."""
    theories = list(theories or [])
    by_name = {t.attrs.get("run_name"): t for t in theories}
    out = []
    for i, sim in enumerate(sims):
        theory = by_name.get(sim.attrs.get("run_name"))
        if theory is None and len(theories) == len(sims):
            theory = theories[i]
        out.append(theory)
    return out


def self_aligned(ds: xr.Dataset | None) -> xr.Dataset | None:
    """ds with its units relabelled per seed by its own last finite record.

    Used where a label-free quantity (the diagonal overlap) is compared between a simulation
    and its theory: finite-N noise can make a simulation and its theory, started from the same
    overlaps, specialise onto a different permutation or sign, so the simulation's relabelling
    need not fit its theory at the end.
    """
    return None if ds is None else align_pair(ds, None)[0]


def diag_overlap(ds: xr.Dataset) -> np.ndarray:
    """Mean over k < min(K, M) of R_kk (seed, alpha): the overlap with the meta-teacher after
    relabelling (ds must already be aligned)."""
    R = ds["R"].values
    d = min(R.shape[-2], R.shape[-1])
    return nanmean(np.stack([R[..., k, k] for k in range(d)]), 0)


def last_finite(values: np.ndarray) -> np.ndarray:
    """values (seed, alpha, ...) -> (seed, ...) at each seed's last all-finite record."""
    out = np.full((values.shape[0],) + values.shape[2:], np.nan)
    for i in range(values.shape[0]):
        ok = np.flatnonzero(np.isfinite(values[i].reshape(values.shape[1], -1)).all(axis=1))
        if len(ok):
            out[i] = values[i, ok[-1]]
    return out


def sim_reached(sim: xr.Dataset, level: float) -> bool:
    """Whether the simulation's eps_meta, mean over seeds, fell below level by alpha_final."""
    from tsmeta.analysis import first_crossing

    eps = nanmean(sim["eps_meta"].values, 0)
    return bool(np.isfinite(first_crossing(eps, sim["alpha"].values, level)))


def spot_check(ax, x, y, reached: bool, label=None):
    """A simulated run on a theory map: a star, filled if its mean eps_meta reached the level."""
    ax.plot(x, y, marker="*", ms=12, ls="none", color="crimson",
            mfc="crimson" if reached else "none", label=label)  # fmt: skip


# --- theory sweeps ------------------------------------------------------------------------


def sweep_of(extra) -> xr.Dataset:
    """The theory sweep a figure is drawn from (`theory.sweeps.run_sweep`)."""
    ds = (extra or {}).get("sweep")
    if ds is None:
        raise ValueError("this figure needs a theory sweep (experiment key `theory_sweep`)")
    return ds


def sweep_levels(ds: xr.Dataset, options: dict) -> list[float]:
    """Levels of options['thresholds'] that the sweep recorded (all of the sweep's if none)."""
    have = [float(v) for v in ds["level"].values]
    wanted = options.get("thresholds") or have
    levels = [h for w in wanted for h in have if np.isclose(w, h)]
    return levels or have


def combos(da: xr.DataArray, skip) -> list[dict]:
    """Every combination of the values of the dims of `da` not in `skip`."""
    dims = [d for d in da.dims if d not in skip]
    values = [list(da[d].values) for d in dims]
    return [dict(zip(dims, v)) for v in itertools.product(*values)] or [{}]


def selection_label(sel: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel.items())
