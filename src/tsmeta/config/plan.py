"""Expanding a config into the Plan: every run and experiment the workflow computes.

An experiment (one paper figure) names its runs as a `base` parameter set, optionally a
`sweep` (cartesian product of lists) and/or explicit `runs` (each merged onto the base),
the `stages` it needs, the window of its comparison (`compare`) and its `figure` options.
`expand` turns the whole config into the set of distinct runs (a run needed by two
experiments appears once) and the mapping from experiment to run names.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

from tsmeta import cost as costs_of
from tsmeta.activations import ACTIVATIONS, activation
from tsmeta.config.claims import check_claims
from tsmeta.config.errors import ConfigError
from tsmeta.figure_kinds import KINDS, options_of
from tsmeta.params import DEFAULT_LEVELS, RunParams, axis_values, searches
from tsmeta.settings import (
    THEORY_KINDS,
    SimSettings,
    TheorySettings,
    resolve_kernel,
    resolve_sampler,
)

THEORY_DEFAULTS = TheorySettings().to_dict()


@dataclass
class Experiment:
    name: str
    runs: list[str]
    stages: list[str]
    figure: dict
    description: str = ""
    sim_settings: dict = field(default_factory=dict)
    theory_settings: dict = field(default_factory=dict)
    theory_sweep: dict | None = None  # {"base": run params, "grid": ..., "levels": ...}
    theory_variants: dict = field(default_factory=dict)  # label -> full theory settings
    # the first-stage window of compare.nc: up to the theory's first crossing of `level`, or
    # up to a fixed `alpha_end`
    compare: dict = field(default_factory=lambda: {"level": DEFAULT_LEVELS[0], "alpha_end": None})

    def runs_with(self, stage: str) -> list[str]:
        """The runs that get `stage`'s file: all of them where the experiment has the stage
        (tasks: where it has any stage), else none."""
        makes = bool(self.stages) if stage == "tasks" else stage in self.stages
        return list(self.runs) if makes else []


def _check_figure_needs(exp: Experiment) -> None:
    """Everything the experiment's figure kind reads is there (`figure_kinds.KINDS`), and
    every figure option is one of its kind, before any job."""
    where = f"config key 'experiments.{exp.name}"
    try:
        options_of(exp.figure)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.figure': {exc}") from exc
    kind = exp.figure.get("kind", "dynamics")
    needs = KINDS[kind].needs
    missing_stages = [s for s in needs.stages if s not in exp.stages]
    if missing_stages:
        raise ConfigError(
            f"{where}.stages': figure kind {kind!r} draws its runs' {needs.stages} files, but "
            f"the experiment's stages are {exp.stages}; add {missing_stages}"
        )
    if len(exp.runs) < needs.min_runs:
        raise ConfigError(
            f"{where}': figure kind {kind!r} needs at least {needs.min_runs} run(s), the "
            f"experiment has {len(exp.runs)} (give `base` and `runs` or `sweep`)"
        )
    if needs.sweep is not None:
        missing = "a theory_sweep" if exp.theory_sweep is None else needs.sweep(exp.theory_sweep)
        if missing:
            raise ConfigError(f"{where}.theory_sweep': figure kind {kind!r} needs {missing}")
    if needs.variants and not exp.theory_variants:
        raise ConfigError(
            f"{where}.theory_variants': figure kind {kind!r} draws the theory against its "
            "variants; give at least one, e.g. `theory_variants: {nofv: {finite_v: false}}`"
        )


@dataclass
class Plan:
    """What the workflow computes: runs by name and experiments by name."""

    runs: dict[str, RunParams]
    experiments: dict[str, Experiment]
    sim_settings: dict[str, dict]  # per run
    theory_settings: dict[str, dict]  # per run
    variant_settings: dict[str, dict[str, dict]] = field(default_factory=dict)  # run -> label
    results: str = "results"
    costs: dict[str, costs_of.RunCost] = field(default_factory=dict)  # per run (tsmeta.cost)
    theory_costs: dict[str, costs_of.TheoryCost] = field(default_factory=dict)  # per run
    variant_costs: dict[str, dict[str, costs_of.TheoryCost]] = field(default_factory=dict)
    sweep_costs: dict[str, costs_of.TheoryCost] = field(default_factory=dict)  # per experiment
    short_job_runtime: int = costs_of.SHORT_JOB_MIN  # minutes: tasks, compare, figures, claims
    claims: dict = field(default_factory=dict)  # name -> claim (config key `claims`)
    claims_left_out: dict = field(default_factory=dict)  # name -> why the plan cannot test it


def _merge(*dicts) -> dict:
    out: dict = {}
    for d in dicts:
        out.update(d or {})
    return out


def _canonical(value):
    """Dicts with sorted keys, recursively: Snakemake compares params by their repr, so the
    key order of a YAML file must not decide whether a job reruns."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _inherited(theory: dict, overrides: dict | None) -> dict:
    """The experiment's theory settings a variant inherits: all of them, or, for a variant of
    another kind (e.g. `{kind: sde}` beside an ODE), those its kind has (THEORY_KINDS)."""
    kind = (overrides or {}).get("kind", theory.get("kind", "ode"))
    if kind == theory.get("kind", "ode") or kind not in THEORY_KINDS:
        return theory
    return {k: v for k, v in theory.items() if k in THEORY_KINDS[kind].fields}


def _run_points(entry: dict) -> list[dict]:
    sweep = entry.get("sweep") or {}
    keys = sorted(sweep)
    product = [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]
    explicit = entry.get("runs") or [{}]
    return [_merge(point, run) for point in product or [{}] for run in explicit]


def _check_sweep(exp_name: str, sweep: dict) -> None:
    """Every value of every axis of a theory sweep makes a valid run with the sweep's base
    (the sweep job would otherwise fail after the simulations)."""
    where = f"config key 'experiments.{exp_name}.theory_sweep"
    axes = {f"grid.{k}": (k, v) for k, v in (sweep.get("grid") or {}).items()}
    if sweep.get("search_eta_J") is not None:
        axes["search_eta_J"] = ("eta_J", sweep["search_eta_J"])
    for key, (name, spec) in axes.items():
        try:
            for value in axis_values(spec):
                RunParams.from_dict({**sweep["base"], name: value})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.{key}': {exc}") from exc
    try:
        searches(sweep)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}': {exc}") from exc


def expand(config: dict) -> Plan:
    """Every run of every experiment, deduplicated by its full parameter set."""
    config = copy.deepcopy(config)
    defaults = config.get("defaults") or {}
    sim_global = config.get("simulation") or {}
    theory_global = _merge(THEORY_DEFAULTS, config.get("theory"))
    runs: dict[str, RunParams] = {}
    sim_settings: dict[str, dict] = {}
    theory_settings: dict[str, dict] = {}
    variant_settings: dict[str, dict[str, dict]] = {}
    experiments: dict[str, Experiment] = {}
    for exp_name, entry in (config.get("experiments") or {}).items():
        names = []
        sim = _canonical(_merge(sim_global, entry.get("simulation")))
        theory = _canonical(_merge(theory_global, entry.get("theory")))
        variants = {
            label: _canonical(_merge(_inherited(theory, overrides), overrides))
            # sorted: the key order of a YAML file must not decide whether a job reruns
            for label, overrides in sorted((entry.get("theory_variants") or {}).items())
        }
        checks = [("simulation", SimSettings, sim), ("theory", TheorySettings, theory)]
        checks += [(f"theory_variants.{k}", TheorySettings, v) for k, v in variants.items()]
        for what, cls, values in checks:
            try:
                cls.from_dict(values)
            except ValueError as exc:
                raise ConfigError(f"config key 'experiments.{exp_name}.{what}': {exc}") from exc
        stages = list(entry.get("stages", ["simulate", "theory"]))
        points = _run_points(entry) if stages else []  # theory-sweep-only figures have no runs
        for i, point in enumerate(points):
            values = _merge(defaults, entry.get("base"), point)
            try:
                params = RunParams.from_dict(values)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"config key 'experiments.{exp_name}' (run {i}): {exc}") from exc
            try:
                sampler = resolve_sampler(sim.get("sampler", "auto"), params)
            except ValueError as exc:
                raise ConfigError(f"config key 'simulation.sampler' ({exp_name}): {exc}") from exc
            if sampler == "gram" and sim.get("kernel", "auto") == "fused":
                try:
                    resolve_kernel(params, SimSettings.from_dict(sim))
                except ValueError as exc:
                    raise ConfigError(
                        f"config key 'simulation.kernel' ({exp_name}, run {params.name()}): {exc}"
                    ) from exc
            name = params.name()
            for table, value, what in (
                (sim_settings, sim, "simulation"),
                (theory_settings, theory, "theory"),
            ):
                if table.get(name, value) != value:
                    raise ConfigError(
                        f"config key 'experiments.{exp_name}.{what}': run {name} is shared with "
                        f"another experiment that sets different {what} settings"
                    )
                table[name] = value
            _check_noise(exp_name, params, theory, variants)
            for label, value in variants.items():
                table = variant_settings.setdefault(name, {})
                if table.get(label, value) != value:
                    raise ConfigError(
                        f"config key 'experiments.{exp_name}.theory_variants.{label}': run "
                        f"{name} is shared with another experiment whose variant {label!r} "
                        "sets different theory settings; give the variant another label"
                    )
                table[label] = value
            runs[name] = params
            if name not in names:
                names.append(name)
        sweep = _theory_sweep(exp_name, entry, defaults)
        figure = _canonical(dict(entry.get("figure") or {}))
        _check_figure_runs(exp_name, figure, names)
        compare = {"level": DEFAULT_LEVELS[0], "alpha_end": None} | (entry.get("compare") or {})
        experiments[exp_name] = Experiment(
            name=exp_name,
            compare=_canonical(compare),
            runs=names,
            theory_sweep=sweep,
            stages=stages,
            figure=figure,
            description=entry.get("description", ""),
            sim_settings=sim,
            theory_settings=theory,
            theory_variants=variants,
        )
        _check_figure_needs(experiments[exp_name])
    if not experiments:
        raise ConfigError("config key 'experiments': at least one experiment is needed")
    # claim order kept: it is the order of the table
    claims = {name: _canonical(claim) for name, claim in (config.get("claims") or {}).items()}
    claims_left_out = check_claims(claims, experiments, runs)
    return Plan(
        runs=runs,
        experiments=experiments,
        sim_settings=sim_settings,
        theory_settings=theory_settings,
        variant_settings=variant_settings,
        results=config.get("results", "results"),
        costs=_fit_costs(runs, sim_settings, config),
        theory_costs={
            name: _theory_job(runs[name], theory_settings[name], config, f"run {name}")
            for name in _with_stage(experiments, "theory")
        },
        variant_costs={
            name: {
                label: _theory_job(runs[name], values, config, f"run {name}, variant {label}")
                for label, values in table.items()
            }
            for name, table in variant_settings.items()
        },
        sweep_costs=_sweep_costs(experiments, config),
        short_job_runtime=costs_of.short_job_runtime(config.get("max_runtime")),
        claims=claims,
        claims_left_out=claims_left_out,
    )


def _check_noise(exp_name: str, params: RunParams, theory: dict, variants: dict) -> None:
    """The `sde` kind needs the diffusion matrix, which not every activation has."""
    where = {"theory": theory} | {f"theory_variants.{k}": v for k, v in variants.items()}
    for key, settings in where.items():
        if settings.get("kind") == "sde" and not activation(params.activation).diffusion:
            with_noise = [a for a in ACTIVATIONS if activation(a).diffusion]
            raise ConfigError(
                f"config key 'experiments.{exp_name}.{key}.kind': 'sde' needs the diffusion "
                f"matrix, which activation {params.activation!r} does not have; allowed: "
                f"'ode', or 'sde' with activation in {with_noise}"
            )


def _theory_sweep(exp_name: str, entry: dict, defaults: dict) -> dict | None:
    """The experiment's theory sweep, its base completed by the defaults, checked."""
    if not entry.get("theory_sweep"):
        return None
    sweep = dict(entry["theory_sweep"])
    base = _merge(defaults, entry.get("base"), sweep.get("base"))
    try:
        RunParams.from_dict(base)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config key 'experiments.{exp_name}.theory_sweep.base': {exc}") from exc
    sweep["base"] = base
    sweep.setdefault("levels", list(DEFAULT_LEVELS))
    sweep = _canonical(sweep)
    _check_sweep(exp_name, sweep)
    return sweep


def _check_figure_runs(exp_name: str, figure: dict, names: list) -> None:
    """Figure options that name runs by position name runs the experiment has."""
    for title, members in (figure.get("families") or {}).items():
        outside = [i for i in members if i >= len(names)]
        if outside:
            raise ConfigError(
                f"config key 'experiments.{exp_name}.figure.families': panel {title!r} "
                f"names run position(s) {outside}, but the experiment has {len(names)} "
                f"run(s): allowed positions 0..{len(names) - 1} (see `tsmeta runs`)"
            )
    if len(figure.get("row_notes") or []) > len(names):
        raise ConfigError(
            f"config key 'experiments.{exp_name}.figure.row_notes': "
            f"{len(figure['row_notes'])} notes for {len(names)} run(s); give at most one "
            "note per run, in config order (see `tsmeta runs`)"
        )


def _fit_costs(runs: dict, sim_settings: dict, config: dict) -> dict[str, costs_of.RunCost]:
    """Every run's cost under the config's memory_budget and max_runtime; where the budget
    binds, the run's settings take the smaller draw chunk and Monte-Carlo batch that fit."""
    resources = {key: config.get(key) for key in ("memory_budget", "max_runtime")}
    try:
        costs = costs_of.plan_costs(runs, sim_settings, resources)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    for name, cost in costs.items():
        settings = SimSettings.from_dict(sim_settings[name])
        changes = {}
        if cost.draw_chunk < costs_of.draw_chunk(cost.sampler, settings):
            changes["draw_chunk"] = cost.draw_chunk
        if cost.mc_batch < costs_of.mc_batch(cost.sampler, runs[name], settings):
            changes["mc_batch"] = cost.mc_batch
        if changes:  # a copy: experiments may share the settings dict
            sim_settings[name] = _canonical({**sim_settings[name], **changes})
    return costs


def _with_stage(experiments: dict, stage: str) -> list[str]:
    """The runs of the experiments that have `stage`, in config order."""
    names = (r for exp in experiments.values() for r in exp.runs_with(stage))
    return list(dict.fromkeys(names))


def _theory_job(params: RunParams, settings: dict, config: dict, what: str):
    """The cost of one theory job under `max_runtime` (one job, never split: refused if it
    cannot fit)."""
    limit = config.get("max_runtime")
    cost = costs_of.theory_cost(params, TheorySettings.from_dict(settings), limit)
    if (why := costs_of.theory_refusal(f"the theory of {what}", cost)) is not None:
        raise ConfigError(why)
    return cost


def _sweep_costs(experiments: dict, config: dict) -> dict:
    """Every experiment's theory sweep under `max_runtime` (refused if it cannot fit)."""
    out = {}
    for name, exp in experiments.items():
        if exp.theory_sweep is None:
            continue
        cost = costs_of.sweep_cost(exp.theory_sweep, config.get("max_runtime"))
        if why := costs_of.theory_refusal(f"the theory sweep of experiment {name}", cost):
            raise ConfigError(why)
        out[name] = cost
    return out
