"""Figures of the paper, one module per `kind`; `draw` dispatches on the figure's `kind` option.

Every kind is a function (experiment, options, sims, theories, extra) -> matplotlib Figure,
where sims/theories are the Datasets of the experiment's runs (in config order) and extra
holds further inputs: "variants" ({label: [theory Datasets]}, the experiment's
`theory_variants`), "compare" (the experiment's compare.nc: relabelled deviations and
first-stage RMS, `analysis.comparison`) and "sweep" (its theory sweep). Shared painters and
conventions: `figures.style`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from tsmeta.figures.algorithms import draw_algorithms  # noqa: E402
from tsmeta.figures.dynamics import draw_dynamics  # noqa: E402
from tsmeta.figures.few_shot import draw_few_shot  # noqa: E402
from tsmeta.figures.finite_data import draw_finite_data  # noqa: E402
from tsmeta.figures.finite_size import draw_finite_size  # noqa: E402
from tsmeta.figures.overparameterization import draw_overparameterization  # noqa: E402
from tsmeta.figures.phase_diagram import draw_phase_diagram  # noqa: E402
from tsmeta.figures.rates_vs_K import draw_rates_vs_K  # noqa: E402
from tsmeta.figures.second_stage import draw_second_stage  # noqa: E402
from tsmeta.figures.variability import draw_variability  # noqa: E402
from tsmeta.io import atomic_output  # noqa: E402

KINDS = {
    "dynamics": draw_dynamics,
    "overparameterization": draw_overparameterization,
    "variability": draw_variability,
    "algorithms": draw_algorithms,
    "finite_size": draw_finite_size,
    "finite_data": draw_finite_data,
    "few_shot": draw_few_shot,
    "rates_vs_K": draw_rates_vs_K,
    "phase_diagram": draw_phase_diagram,
    "second_stage": draw_second_stage,
}


def save(fig, outputs) -> list[Path]:
    """Save to every path (format from the suffix), each through a temporary file."""
    written = []
    for out in outputs:
        with atomic_output(out, suffix=Path(out).suffix) as tmp:  # umask permissions
            fig.savefig(tmp, dpi=130)
        written.append(Path(out))
    plt.close(fig)
    return written


def draw(experiment: str, options: dict, sims, theories, outputs, extra=None) -> list[Path]:
    sns.set_theme(context="paper", style="ticks")
    kind = options.get("kind", "dynamics")
    if kind not in KINDS:
        raise ValueError(f"figure kind must be one of {sorted(KINDS)}, got {kind!r}")
    return save(KINDS[kind](experiment, options, sims, theories, extra or {}), outputs)
