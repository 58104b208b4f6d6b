"""What every figure shares: how a simulation band, a theory line, an eps_meta axis and a spot
check look, how a run's values are read from a figure's data, how a theory that ends on an
unstable state is marked, and how a figure gets its title and note.

Conventions (the numbers: `tsmeta.figure_data`): student units are relabelled per seed before
anything is averaged over seeds; lines are means over seeds, bands min-max over seeds; theories
are dashed; seeds that diverged are NaN from their divergence on, drop out of every mean, and
each legend entry says how many seeds of its run diverged. Every figure uses matplotlib's
constrained layout.
"""

from __future__ import annotations

import textwrap

import numpy as np
import xarray as xr

from tsmeta.figure_data import nanmean, seed_band

EPS_LABEL = r"$\varepsilon_{\rm meta}$"
ALPHA_LABEL = r"$\alpha = t/N$"


def draw_band(ax, x, mean, lo, hi, color, label=None, lw=1.6, alpha_fill=0.2):
    """A mean line with its min-max band (`figure_data.seed_band`)."""
    ax.plot(x, mean, color=color, lw=lw, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha_fill, lw=0)


def band(ax, x, values, color, label=None, lw=1.6, alpha_fill=0.2):
    """Mean over seeds (axis 0) with the min-max band; quiet where every seed is NaN."""
    draw_band(ax, x, *seed_band(values), color, label, lw, alpha_fill)


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
    """Title (option `title`, else the experiment's name) and a grey note under the axes
    (inside the constrained layout), wrapped to the figure's width. options: a kind's options,
    or the config's dict for the kinds not yet split into data and paint."""
    title = options.get("title") if isinstance(options, dict) else options.title
    fig.suptitle(title or experiment, fontsize=11)
    width = max(60, int(fig.get_figwidth() * 17))  # characters of 7-pt text per line
    fig.supxlabel(textwrap.fill(note, width), fontsize=7, color="grey")
    return fig


# how far each per-run dim of a figure's data reaches for one run (figure_data.run_dataset)
RUN_SIZES = {"record": "n_records", "k": "K", "n": "M", "l": "K"}


def run_values(ds: xr.Dataset, i: int) -> dict:
    """Run i's values of a figure's data, each array cut to the run's own sizes (its alpha
    grid, K and M: `n_records`, `K`, `M`)."""
    row = {}
    for name, da in ds.data_vars.items():
        if "run" not in da.dims:
            continue
        values = da.isel(run=i).values
        if values.ndim == 0:
            row[name] = values.item()
            continue
        cut = tuple(
            slice(0, int(ds[RUN_SIZES[d]].values[i])) if d in RUN_SIZES else slice(None)
            for d in da.dims
            if d != "run"
        )
        row[name] = values[cut]
    return row


def spot_check(ax, x, y, reached: bool, label=None):
    """A simulated run on a theory map: a star, filled if its mean eps_meta reached the level."""
    ax.plot(x, y, marker="*", ms=12, ls="none", color="crimson",
            mfc="crimson" if reached else "none", label=label)  # fmt: skip


UNSTABLE_END_NOTE = (
    r" $\lambda$: the largest real part of the eigenvalues of the theory's drift Jacobian at "
    "its last record (median over seeds), shown where $\\lambda$ times the run's last "
    "$\\alpha$ exceeds 1: the ODE ends on a state that the simulation, given a start by its "
    "finite-N noise, leaves as exp($\\lambda \\alpha$) (docs/theory.md section 13)."
)


def unstable_end(rate: float, alpha_final: float) -> bool:
    """Whether the theory's last state amplifies a deviation by more than e over a span as
    long as the run: growth rate `rate` (`growth_rate_end`) with rate * alpha_final > 1."""
    return bool(np.isfinite(rate) and rate * alpha_final > 1.0)


def unstable_end_text(rate: float, sep: str = " ") -> str:
    return f"theory ends unstable:{sep}$\\lambda$ = {rate:+.3g}"
