"""The figure kinds: what each one reads, its options and its report caption, in one registry.

A kind is two functions in two modules: `tsmeta.figure_data.<kind>.data(inputs, options)`
computes every number the figure draws into a Dataset (the workflow writes it to
results/figures/<name>.nc), and `tsmeta.figures.<kind>.paint(ds, options)` draws that Dataset.
Its options are a frozen dataclass: a field with `metadata={"data": True}` changes the data
(the figure_data job reruns), every other field only the painting (only the figure job reruns).

This module imports neither torch, scipy nor matplotlib: the Snakefile and `tsmeta validate`
read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from tsmeta.params import DEFAULT_LEVELS, ESCAPE_LEVEL, FIRST_STAGE_LEVEL

DATA = {"data": True}  # metadata of an option that changes the figure's data


def data_option(default=None, *, factory=None):
    """An option field whose value changes the data (the figure_data job reruns)."""
    if factory is not None:
        return field(default_factory=factory, metadata=DATA)
    return field(default=default, metadata=DATA)


def paint_list(*values):
    """A paint-only option whose default is the list `values`."""
    return field(default_factory=lambda: list(values))


# --- what a kind needs from its experiment ---------------------------------------------------


def grid_axes(*axes: str) -> Callable[[dict], str | None]:
    """A sweep check: the grid has each of `axes`."""

    def check(sweep: dict) -> str | None:
        missing = [a for a in axes if a not in (sweep.get("grid") or {})]
        return (
            f"a theory_sweep.grid with the axes {list(axes)} (missing {missing})"
            if missing
            else None
        )

    return check


def searches_a_rate(sweep: dict) -> str | None:
    if "eta_w" in (sweep.get("grid") or {}) or sweep.get("search_eta_J") is not None:
        return None
    return "a theory_sweep whose grid has an eta_w axis, or a search_eta_J"


@dataclass(frozen=True)
class FigureNeeds:
    """What a figure kind reads: `stages` its runs must have (none: runs are optional spot
    checks), at least `min_runs` runs, a theory sweep that passes `sweep` (None: no sweep
    needed; the check returns what is missing, or None), at least one theory variant."""

    stages: tuple[str, ...] = ("simulate", "theory")
    min_runs: int = 1
    sweep: Callable[[dict], str | None] | None = None
    variants: bool = False


# --- options of each kind: names and defaults as the config writes them ----------------------


@dataclass(frozen=True)
class FigureOptions:
    """Options of every kind."""

    title: str = ""  # figure title; "" is the experiment's name


@dataclass(frozen=True)
class DynamicsOptions(FigureOptions):
    xscale: str = "log"
    thresholds: list = data_option(factory=lambda: list(DEFAULT_LEVELS))  # first crossings drawn
    row_notes: list = paint_list()


@dataclass(frozen=True)
class OverparameterizationOptions(FigureOptions):
    xscale: str = "log"
    thresholds: list = paint_list()
    arrangement_threshold: float = data_option(0.5)
    families: dict | None = None


@dataclass(frozen=True)
class VariabilityOptions(FigureOptions):
    xscale: str = "log"
    thresholds: list = paint_list()
    floor_window: float = data_option(0.2)


@dataclass(frozen=True)
class AlgorithmsOptions(FigureOptions):
    xscale: str = "log"
    thresholds: list = data_option(factory=lambda: [FIRST_STAGE_LEVEL])
    growth_alpha_max: float = data_option(2.0)
    growth_max: float = data_option(1.5)


@dataclass(frozen=True)
class FiniteSizeOptions(FigureOptions):
    xscale: str = "log"
    escape_level: float = data_option(ESCAPE_LEVEL)


@dataclass(frozen=True)
class FiniteDataOptions(FigureOptions):
    xscale: str = "log"


@dataclass(frozen=True)
class FewShotOptions(FigureOptions):
    xscale: str = "log"


@dataclass(frozen=True)
class SweepOptions(FigureOptions):
    """rates_vs_K, phase_diagram: the sweep's levels drawn (none: every level it recorded)."""

    thresholds: list = data_option(factory=list)


@dataclass(frozen=True)
class SecondStageOptions(FigureOptions):
    escape_level: float = data_option(ESCAPE_LEVEL)


@dataclass(frozen=True)
class ActivationsOptions(FigureOptions):
    xscale: str = "log"
    growth_alpha_max: float = data_option(2.0)  # early growth window (g with <g> = 0)
    growth_max: float = data_option(1.5)
    plateau_tolerance: float = data_option(0.05)  # relu: mean R within 5 % of the plateau
    plateau_growth: float = data_option(3.0)  # relu: fit until rms(R - mean R) grows 3x


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureKind:
    name: str
    data: str  # module with data(inputs: FigureInputs, options) -> xr.Dataset
    paint: str  # module with paint(ds, options) -> matplotlib Figure
    needs: FigureNeeds
    options: type[FigureOptions]
    caption: str  # plain text of the report caption (escaped for reStructuredText there)


def _kind(name, needs, options, caption) -> FigureKind:
    return FigureKind(
        name, f"tsmeta.figure_data.{name}", f"tsmeta.figures.{name}", needs, options, caption
    )


BANDS = (
    "Simulation: mean and min-max band over seeds (student units relabelled per seed to the "
    "teacher unit they end on); theory (dashed): the order-parameter ODE of "
    "docs/theory.md from each seed's own initial overlaps."
)

KINDS: dict[str, FigureKind] = {
    kind.name: kind
    for kind in (
        _kind("dynamics", FigureNeeds(stages=("simulate",)), DynamicsOptions,
              "eps_meta, R_kn and Q_kl against alpha per run, simulation next to its theory, "
              "with the first crossings of the marked levels. " + BANDS),
        _kind("overparameterization", FigureNeeds(stages=("simulate",)),
              OverparameterizationOptions,
              "Over-parameterisation (K > M): eps_meta per family of runs, and the final "
              "|R_kn| of each run with the arrangements its seeds found. " + BANDS),
        _kind("variability", FigureNeeds(stages=("simulate",)), VariabilityOptions,
              "Task variability: eps_meta and the overlap with the meta-teacher per gamma, and "
              "the error floor against gamma. " + BANDS),
        _kind("algorithms", FigureNeeds(stages=("simulate",)), AlgorithmsOptions,
              "FO-ANIL, ANIL, MAML and FO-MAML, each against its own theory, per head rate "
              "eta_w; and the early growth rate of R against the escape factor. " + BANDS),
        _kind("finite_size", FigureNeeds(min_runs=2), FiniteSizeOptions,
              "Finite size: simulation minus theory on the first stage against N with fitted "
              "exponents, and the seed-to-seed spread of the escape and its deviation from the "
              "theory against N. " + BANDS),
        _kind("finite_data", FigureNeeds(variants=True), FiniteDataOptions,
              "Finite data: simulations at a few P and V against the theory and its variants, "
              "and the first-stage deviation of each theory per run. " + BANDS),
        _kind("rates_vs_K", FigureNeeds(stages=(), min_runs=0, sweep=searches_a_rate),
              SweepOptions,
              "The escape rate and the speed and precision thresholds against K as laws, from "
              "the experiment's theory sweep; simulations as points."),
        _kind("phase_diagram",
              FigureNeeds(stages=(), min_runs=0, sweep=grid_axes("eta_J", "eta_w")),
              SweepOptions,
              "Heat maps over (eta_J, eta_w) of log10 eps_meta at alpha_final and of the alpha "
              "of the first crossing of the first level, from the experiment's theory sweep; "
              "simulated runs as spot checks."),
        _kind("few_shot", FigureNeeds(stages=("simulate",)), FewShotOptions,
              "Few-shot error after adapting on P examples, against alpha and against P: "
              "theory closed form, simulation Monte Carlo and closed form on the simulated "
              "order parameters."),
        _kind("second_stage", FigureNeeds(min_runs=2), SecondStageOptions,
              "Seed-to-seed statistics of the escape into the one-to-one alignment: its "
              "distribution, simulated against ODE escape seed by seed, and the mean escape "
              "against ln N."),
        _kind("activations", FigureNeeds(), ActivationsOptions,
              "erf, relu and linear (FO-ANIL): eps_meta, the overlap with the meta-teacher "
              "(the learned subspace for linear) and the norms against alpha, simulation "
              "against theory; the escape rate from the first plateau of each against "
              "eta_J eta_w / (K M), theory and measured growth rates. " + BANDS),
    )
}  # fmt: skip


# --- options from a config's `figure` entry ----------------------------------------------------


def option_fields(kind: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(KINDS[kind].options)}


def option_defaults(kind: str) -> dict:
    """Every option of `kind` with its default (a fresh list or dict where it is one)."""
    return dict(dataclasses.asdict(KINDS[kind].options()))


def is_data_option(field_: dataclasses.Field) -> bool:
    return bool(field_.metadata.get("data"))


def options_of(figure: dict) -> FigureOptions:
    """The options of a config's `figure` entry (its `kind` names the class); an option the
    kind does not have is a ValueError naming the kind's options."""
    values = dict(figure or {})
    kind = values.pop("kind", "dynamics")
    if kind not in KINDS:
        raise ValueError(f"figure kind must be one of {sorted(KINDS)}, got {kind!r}")
    unknown = sorted(set(values) - set(option_fields(kind)))
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} is not an option of figure kind {kind!r}; its options: "
            f"{sorted(option_fields(kind))}"
        )
    return KINDS[kind].options(**values)


def split_options(figure: dict) -> tuple[dict, dict]:
    """(data options, paint options) of a config's `figure` entry, every option with its value
    or default; the data options carry the kind."""
    kind = (figure or {}).get("kind", "dynamics")
    values = dataclasses.asdict(options_of(figure))
    fields = option_fields(kind)
    data = {"kind": kind} | {k: v for k, v in values.items() if is_data_option(fields[k])}
    paint = {k: v for k, v in values.items() if not is_data_option(fields[k])}
    return data, paint
