"""Declarative experiments: validation with clear errors and expansion into runs.

An experiment (one paper figure) names its runs as a `base` parameter set, optionally a
`sweep` (cartesian product of lists) and/or explicit `runs` (each merged onto the base),
the `stages` it needs, and its `figure` options. `expand` turns the whole config into the
set of distinct runs (a run needed by two experiments appears once) and the mapping from
experiment to run names.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tsmeta.params import DEFAULT_LEVELS, RunParams
from tsmeta.settings import SimSettings, TheorySettings, resolve_sampler

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
THEORY_DEFAULTS = TheorySettings().to_dict()


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is allowed."""


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


@dataclass
class Plan:
    """What the workflow computes: runs by name and experiments by name."""

    runs: dict[str, RunParams]
    experiments: dict[str, Experiment]
    sim_settings: dict[str, dict]  # per run
    theory_settings: dict[str, dict]  # per run
    variant_settings: dict[str, dict[str, dict]] = field(default_factory=dict)  # run -> label
    results: str = "results"


def load(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def _key_path(error) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _format_error(error) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ".".join([where, extra[0]]) if where != "<top level>" else extra[0]
        return f"config key '{keys}': unknown key; allowed keys here: {allowed}"
    if error.validator == "enum":
        allowed = error.validator_value
        return f"config key '{where}': {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rng = {
            k: error.schema[k]
            for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
            if k in error.schema
        }
        return f"config key '{where}': {error.instance!r} is out of range; allowed: {rng}"
    if error.validator == "type":
        expected = error.validator_value
        return f"config key '{where}': {error.instance!r} has the wrong type; expected {expected}"
    if error.validator == "required":
        return f"config key '{where}': {error.message}"
    return f"config key '{where}': {error.message}"


def validate(config: dict, schema_path: str | Path = SCHEMA_PATH) -> None:
    """Check `config` against the JSON schema and the cross-references; raise ConfigError."""
    from jsonschema import Draft202012Validator

    schema = load(schema_path)
    validator = Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key_path(e))
    )
    if errors:
        # the deepest error is the most specific one (oneOf/anyOf report at the parent)
        best = max(errors, key=lambda e: len(e.absolute_path))
        raise ConfigError(_format_error(best))
    expand(config)  # semantic checks: every run constructible, figure references valid


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


def _run_points(entry: dict) -> list[dict]:
    sweep = entry.get("sweep") or {}
    keys = sorted(sweep)
    product = [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]
    explicit = entry.get("runs") or [{}]
    return [_merge(point, run) for point in product or [{}] for run in explicit]


def schema_markdown(schema_path: str | Path = SCHEMA_PATH) -> str:
    """Tables of every key of the schema's sections (config/README.md embeds them)."""
    schema = load(schema_path)
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    lines = []
    for section in ("run_params", "simulation", "theory", "theory_sweep"):
        lines += [f"### `{section}`", "", "| key | allowed | default | description |"]
        lines += ["| --- | --- | --- | --- |"]
        for key, spec in schema["$defs"][section]["properties"].items():
            allowed = spec.get("enum") or spec.get("type") or "see schema"
            allowed = " / ".join(map(str, allowed)) if isinstance(allowed, list) else allowed
            allowed += "".join(f" {op}{spec[b]}" for b, op in bounds.items() if b in spec)
            default = f"`{spec['default']}`" if "default" in spec else "required"
            text = " ".join(str(spec.get("description", "")).split())
            lines.append(f"| `{key}` | {allowed} | {default} | {text} |")
        lines.append("")
    return "\n".join(lines)


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
            label: _canonical(_merge(theory, overrides))
            for label, overrides in (entry.get("theory_variants") or {}).items()
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
                resolve_sampler(sim.get("sampler", "auto"), params)
            except ValueError as exc:
                raise ConfigError(f"config key 'simulation.sampler' ({exp_name}): {exc}") from exc
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
        sweep = None
        if entry.get("theory_sweep"):
            sweep = dict(entry["theory_sweep"])
            base = _merge(defaults, entry.get("base"), sweep.get("base"))
            try:
                RunParams.from_dict(base)
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"config key 'experiments.{exp_name}.theory_sweep.base': {exc}"
                ) from exc
            sweep["base"] = base
            sweep.setdefault("levels", list(DEFAULT_LEVELS))
            sweep = _canonical(sweep)
        figure = _canonical(dict(entry.get("figure") or {}))
        for title, members in (figure.get("families") or {}).items():
            outside = [i for i in members if i >= len(names)]
            if outside:
                raise ConfigError(
                    f"config key 'experiments.{exp_name}.figure.families': panel {title!r} "
                    f"names run position(s) {outside}, but the experiment has {len(names)} "
                    f"run(s): allowed positions 0..{len(names) - 1} (see `tsmeta runs`)"
                )
        experiments[exp_name] = Experiment(
            name=exp_name,
            runs=names,
            theory_sweep=sweep,
            stages=stages,
            figure=figure,
            description=entry.get("description", ""),
            sim_settings=sim,
            theory_settings=theory,
            theory_variants=variants,
        )
    if not experiments:
        raise ConfigError("config key 'experiments': at least one experiment is needed")
    return Plan(
        runs=runs,
        experiments=experiments,
        sim_settings=sim_settings,
        theory_settings=theory_settings,
        variant_settings=variant_settings,
        results=config.get("results", "results"),
    )
