"""phase_diagram: heat maps over (eta_J, eta_w) of log10 eps_meta at alpha_final and of the
alpha at which eps_meta first falls below the first level (hatched where it never does), from
a theory sweep; diverged members and members whose units did not specialise marked, the line
eta_w = 3K drawn, simulations as spot checks. Further grid axes give one row per value. The
numbers come from `figure_data.phase_diagram`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from tsmeta.figures.style import finish, spot_check


def _limits(ds, name):
    """The colour range shared by all rows (None where nothing is finite)."""
    lo, hi = ds.attrs[name]
    return (None, None) if not np.isfinite(lo) else (lo, hi)


def paint(ds, options):
    level = float(ds.attrs["level"])
    n_rows = ds.sizes["row"]
    fig, axes = plt.subplots(
        n_rows, 2, figsize=(11.5, 4.3 * n_rows), squeeze=False, layout="constrained"
    )
    xe, ye = ds["eta_J_edges"].values, ds["eta_w_edges"].values
    XJ, YW = np.meshgrid(ds["eta_J"].values, ds["eta_w"].values)
    eps_range = _limits(ds, "log10_eps_range")
    cross_range = _limits(ds, "alpha_to_level_range")
    norm = LogNorm(*cross_range) if cross_range[0] is not None else None
    for r, (ax_e, ax_a) in enumerate(axes):
        row = ds.isel(row=r)
        div = row["diverged"].values.astype(bool)
        spec = row["specialised"].values.astype(bool)
        m = ax_e.pcolormesh(xe, ye, np.ma.masked_invalid(row["log10_eps"].values),
                            cmap="viridis", shading="flat", vmin=eps_range[0],
                            vmax=eps_range[1])  # fmt: skip
        fig.colorbar(m, ax=ax_e, label=r"$\log_{10}\varepsilon_{\rm meta}$ at $\alpha_{\rm final}$")
        m = ax_a.pcolormesh(xe, ye, np.ma.masked_invalid(row["alpha_to_level"].values),
                            cmap="magma_r", norm=norm, shading="flat")  # fmt: skip
        fig.colorbar(
            m, ax=ax_a, label=rf"first $\alpha$ with $\varepsilon_{{\rm meta}} < {level:g}$"
        )
        ax_a.add_patch(Rectangle((xe[0], ye[0]), xe[-1] - xe[0], ye[-1] - ye[0], fill=False,
                                 hatch="///", color="lightgrey", lw=0, zorder=0))  # fmt: skip
        ax_a.text(0.01, 0.01,
                  rf"hatched: never below {level:g} by $\alpha$ = {ds.attrs['alpha_final']:g}",
                  transform=ax_a.transAxes, fontsize=7, color="dimgrey")  # fmt: skip
        spots = ds[["spot_eta_J", "spot_eta_w", "spot_reached"]].where(
            ds["spot_row"] == r, drop=True
        )
        for ax in (ax_e, ax_a):
            if div.any():
                ax.plot(XJ[div], YW[div], "x", color="red", ms=6, mew=1.5, ls="none",
                        label="diverged")  # fmt: skip
            ok = ~spec & ~div
            if ok.any() and ax is ax_e:
                ax.plot(XJ[ok], YW[ok], "o", mfc="none", mec="white", ms=5, ls="none",
                        label="units not specialised")  # fmt: skip
            rate = float(row["eta_w_exact"])
            if np.isfinite(rate):  # NaN: the activation has no exact one-step head (relu)
                ax.axhline(rate, color="white" if ax is ax_e else "black", ls="--", lw=1,
                           label=rf"$\eta_w = {rate:g}$ (exact head)")  # fmt: skip
            for x, y, reached in zip(*(spots[v].values for v in spots.data_vars)):
                spot_check(ax, x, y, bool(reached))
            ax.set_xscale("log" if ds.attrs["eta_J_log"] else "linear")
            ax.set_yscale("log" if ds.attrs["eta_w_log"] else "linear")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            ax.set_xlabel(r"$\eta_J$")
            ax.set_ylabel(r"$\eta_w$")
            ax.legend(fontsize=7, loc="upper left", framealpha=0.6)
        ax_e.set_title(str(row["title"].values), fontsize=9, loc="left")
    title = getattr(options, "title", "")
    return finish(fig, ds.attrs["experiment"], {"title": title}, ds.attrs["note"])
