"""Figures of the paper: `tsmeta.figures.<kind>.paint(ds, options)` draws a kind's data
(`tsmeta.figure_data`, results/figures/<name>.nc) with matplotlib; `draw` dispatches on the
data's `kind` attribute (`tsmeta.figure_kinds.KINDS`). Shared painters: `figures.style`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from tsmeta.figure_kinds import KINDS, options_of  # noqa: E402
from tsmeta.io import atomic_output  # noqa: E402


def save(fig, outputs) -> list[Path]:
    """Save to every path (format from the suffix), each through a temporary file."""
    written = []
    for out in outputs:
        with atomic_output(out, suffix=Path(out).suffix) as tmp:  # umask permissions
            fig.savefig(tmp, dpi=130)
        written.append(Path(out))
    plt.close(fig)
    return written


def paint(ds, figure: dict):
    """The matplotlib Figure of a kind's data `ds` with the config's `figure` options."""
    sns.set_theme(context="paper", style="ticks")
    kind = KINDS[ds.attrs["kind"]]
    return importlib.import_module(kind.paint).paint(ds, options_of(figure))


def draw(ds, figure: dict, outputs) -> list[Path]:
    return save(paint(ds, figure), outputs)


def figure_of(inputs, figure: dict):
    """The figure of a config's `figure` entry from opened inputs (`figure_data.FigureInputs`),
    without files: its data computed, then painted (tests, notebooks)."""
    from tsmeta.figure_data import compute

    kind = (figure or {}).get("kind", "dynamics")
    return paint(compute(kind, inputs, figure), figure)
