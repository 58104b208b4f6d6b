"""Figures of the paper: `tsmeta.figures.<kind>.paint(ds, options)` draws a kind's data
(`tsmeta.figure_data`, results/figures/<name>.nc) with matplotlib; `draw` dispatches on the
data's `kind` attribute (`tsmeta.figure_kinds.KINDS`). Shared painters: `figures.style`.
"""

from __future__ import annotations

import importlib
import json
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
    kind = ds.attrs["kind"]
    if kind in LEGACY:
        return draw_legacy(ds, figure)
    return importlib.import_module(KINDS[kind].paint).paint(ds, options_of(figure))


def draw(ds, figure: dict, outputs) -> list[Path]:
    return save(paint(ds, figure), outputs)


def figure_of(inputs, figure: dict):
    """The figure of a config's `figure` entry from opened inputs (`figure_data.FigureInputs`),
    without files: its data computed, then painted (tests, notebooks)."""
    from tsmeta.figure_data import compute

    kind = figure.get("kind", "dynamics")
    if kind in LEGACY:
        return draw_legacy_inputs(kind, inputs, figure)
    return paint(compute(kind, inputs, figure), figure)


# --- kinds not yet split into data and paint (they draw from the experiment's files) ----------

LEGACY = {
    "algorithms": "draw_algorithms",
    "few_shot": "draw_few_shot",
    "rates_vs_K": "draw_rates_vs_K",
    "phase_diagram": "draw_phase_diagram",
    "second_stage": "draw_second_stage",
}


def draw_legacy(ds, figure: dict):
    """A legacy kind drawn from the input files its data file names; the compare window
    (once figure options) from its compare.nc."""
    from tsmeta.figure_data import open_inputs

    paths: dict = {}
    for record in json.loads(ds.attrs["inputs"]):
        paths.setdefault(record["role"], []).append(record["path"])
    variants = {k.removeprefix("variant "): v for k, v in paths.items() if k.startswith("variant ")}
    compare, sweep = ((paths.get(role) or [None])[0] for role in ("compare", "sweep"))
    inputs = open_inputs(ds.attrs["experiment"], paths.get("sims", []),
                         paths.get("theories", []), variants, compare, sweep)  # fmt: skip
    return draw_legacy_inputs(ds.attrs["kind"], inputs, figure)


def draw_legacy_inputs(kind: str, inputs, figure: dict):
    """A legacy kind drawn by its draw_<kind> function from opened inputs."""
    from tsmeta.figure_data import compare_window

    sns.set_theme(context="paper", style="ticks")
    level, alpha_end = compare_window(inputs.compare)
    options = dict(figure) | {"first_stage_level": level, "first_stage_alpha": alpha_end}
    extra = {"variants": inputs.variants, "sweep": inputs.sweep}
    if inputs.compare is not None:
        extra["compare"] = inputs.compare
    draw_kind = getattr(importlib.import_module(f"tsmeta.figures.{kind}"), LEGACY[kind])
    return draw_kind(inputs.experiment, options, inputs.sims, inputs.theories, extra)
