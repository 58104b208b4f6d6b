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
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tsmeta.params import DEFAULT_LEVELS, RunParams, axis_values, searches
from tsmeta.settings import SimSettings, TheorySettings, resolve_sampler

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")  # package data; config/schema.yaml links here
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


# --- what each figure kind needs from its experiment ----------------------------------------


def _grid_axes(*axes: str) -> Callable[[dict], str | None]:
    """A sweep check: the grid has each of `axes`."""

    def check(sweep: dict) -> str | None:
        missing = [a for a in axes if a not in (sweep.get("grid") or {})]
        return (
            f"a theory_sweep.grid with the axes {list(axes)} (missing {missing})"
            if missing
            else None
        )

    return check


def _searches_a_rate(sweep: dict) -> str | None:
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


# One line per figure kind (figures.KINDS draws them; tests check the tables agree).
FIGURE_NEEDS: dict[str, FigureNeeds] = {
    "dynamics": FigureNeeds(stages=("simulate",)),
    "overparameterization": FigureNeeds(stages=("simulate",)),
    "variability": FigureNeeds(stages=("simulate",)),
    "algorithms": FigureNeeds(stages=("simulate",)),
    "finite_size": FigureNeeds(min_runs=2),
    "finite_data": FigureNeeds(variants=True),
    "rates_vs_K": FigureNeeds(stages=(), min_runs=0, sweep=_searches_a_rate),
    "phase_diagram": FigureNeeds(stages=(), min_runs=0, sweep=_grid_axes("eta_J", "eta_w")),
    "few_shot": FigureNeeds(stages=("simulate",)),
    "second_stage": FigureNeeds(min_runs=2),
}


def _check_figure_needs(exp: Experiment) -> None:
    """Everything the experiment's figure kind reads is there (FIGURE_NEEDS), before any job."""
    kind = exp.figure.get("kind", "dynamics")
    needs = FIGURE_NEEDS.get(kind)
    if needs is None:
        return  # a kind the schema accepts but that declares nothing needs nothing
    where = f"config key 'experiments.{exp.name}"
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


# --- YAML ------------------------------------------------------------------------------

# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: an exponent without a dot or
# without a sign, e.g. 1e6, 1.0e6, 2E-3. PyYAML's own float rule still covers the rest.
_FLOAT_WITH_EXPONENT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class YAMLLoader(yaml.SafeLoader):
    """SafeLoader that reads 1e6 and 1.0e6 as numbers and refuses a key given twice in one
    mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML's own error names it
                    continue
                seen[key] = line
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _FLOAT_WITH_EXPONENT, list("-+0123456789.")
)


def _yaml_error(source: str, exc: yaml.YAMLError) -> ConfigError:
    """`<file>, line N: <problem>` from a PyYAML error (which puts the place last)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    problem = "; ".join(str(part) for part in parts if part) or str(exc)
    return ConfigError(f"{where}: not valid YAML: {problem}")


def loads(text: str, source: str = "<string>"):
    """One YAML value with the project's loader (YAMLLoader); errors name source and line."""
    try:
        return yaml.load(text, Loader=YAMLLoader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None


def load(path: str | Path) -> dict:
    """A config (or schema) file: a mapping, read with YAMLLoader; errors name file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    data = loads(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, got {type(data).__name__}")
    return data


DEFAULT_CONFIG = Path("config") / "config.yaml"


def default_config_path(repository: str | os.PathLike | None = None) -> Path:
    """config/config.yaml of the current folder, else of `repository` (default: the
    repository this package is installed from, if it is an editable install); a clear error
    if there is none."""
    here = Path.cwd() / DEFAULT_CONFIG
    if here.exists():
        return DEFAULT_CONFIG
    repository = Path(repository) if repository else Path(__file__).resolve().parents[2]
    if (repository / DEFAULT_CONFIG).exists():
        return repository / DEFAULT_CONFIG
    raise ConfigError(
        f"no config given and no {DEFAULT_CONFIG} in the current folder ({Path.cwd()}) or in "
        f"the repository ({repository}); give one with --config FILE (or --configfile FILE "
        "for snakemake)"
    )


def _deep_merge(into: dict, other) -> dict:
    """Merge `other` into `into` recursively, as Snakemake merges config files."""
    for key, value in (other or {}).items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def workflow_config(configfiles, overrides=None, repository=None) -> dict:
    """The config of a Snakemake run, read with this project's loader: the --configfile
    files in order (or config/config.yaml where none is given), then the --config key=value
    overrides. Snakemake reads config files with YAML 1.1 and keeps the last of two equal
    keys; reading them again here makes 1e6 a number and a repeated key an error."""
    files = [Path(f) for f in configfiles] or [default_config_path(repository)]
    merged: dict = {}
    for path in files:
        _deep_merge(merged, load(path))
    return _deep_merge(merged, dict(overrides or {}))


def non_finite_keys(value, path: str = ""):
    """Key paths (a.b.0.c) of every number in `value` that is NaN or infinite."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from non_finite_keys(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from non_finite_keys(item, f"{path}.{i}" if path else str(i))
    elif isinstance(value, float) and not math.isfinite(value):
        yield path or "<top level>", value


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
        hint = ""
        if isinstance(error.instance, str) and re.fullmatch(r"[-+0-9.eE_]+", error.instance):
            hint = " (a number in quotes? write it unquoted, e.g. 1.0e6)"
        return (
            f"config key '{where}': {error.instance!r} has the wrong type; expected "
            f"{expected}{hint}"
        )
    if error.validator == "required":
        return f"config key '{where}': {error.message}"
    return f"config key '{where}': {error.message}"


def validate(config: dict, schema_path: str | Path = SCHEMA_PATH) -> None:
    """Check `config` against the JSON schema and the cross-references; raise ConfigError."""
    from jsonschema import Draft202012Validator

    if not isinstance(config, dict):
        raise ConfigError(f"a config is a mapping of keys, got {type(config).__name__}")
    for where, value in non_finite_keys(config):  # JSON schema bounds let NaN and inf through
        raise ConfigError(
            f"config key '{where}': {value!r} is not a finite number; every number in a "
            "config must be finite (write large numbers like 1.0e6)"
        )
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


def rst_text(text: str) -> str:
    """`text` as one reStructuredText paragraph that reads literally (report captions):
    whitespace collapsed, and every character that starts inline markup escaped, so that a
    description like `|R_kn|` is not taken for a substitution or a reference."""
    return re.sub(r"([\\`*_|])", r"\\\1", " ".join(str(text).split()))


SCHEMA_DOC_MARK = "<!-- tables below: generated by `tsmeta schema-doc --write config/README.md` -->"


def _schema_sections(schema: dict) -> list[tuple[str, dict]]:
    defs = schema["$defs"]
    sections = [(name, defs[name]) for name in ("run_params", "simulation", "theory")]
    sections.append(("theory_sweep", defs["theory_sweep"]))
    experiment = {k: v for k, v in defs["experiment"]["properties"].items() if k != "figure"}
    sections.append(("experiments.<name>", {"properties": experiment}))
    sections.append(("experiments.<name>.figure", defs["experiment"]["properties"]["figure"]))
    return sections


def schema_markdown(schema_path: str | Path = SCHEMA_PATH) -> str:
    """Tables of every key of the schema's sections (config/README.md embeds them)."""
    schema = load(schema_path)
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    lines = []
    for section, node in _schema_sections(schema):
        lines += [f"### `{section}`", "", "| key | allowed | default | description |"]
        lines += ["| --- | --- | --- | --- |"]
        for key, spec in node["properties"].items():
            allowed = spec.get("enum") or spec.get("type") or "see schema"
            allowed = " / ".join(map(str, allowed)) if isinstance(allowed, list) else allowed
            allowed += "".join(f" {op}{spec[b]}" for b, op in bounds.items() if b in spec)
            default = f"`{spec['default']}`" if "default" in spec else "required"
            text = " ".join(str(spec.get("description", "")).split())
            lines.append(f"| `{key}` | {allowed} | {default} | {text} |")
        lines.append("")
    return "\n".join(lines)


def write_schema_doc(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> Path:
    """Replace everything after SCHEMA_DOC_MARK in `path` by the schema's tables."""
    path = Path(path)
    text = path.read_text()
    if SCHEMA_DOC_MARK not in text:
        raise ValueError(f"{path}: no line {SCHEMA_DOC_MARK!r} to write the tables after")
    head = text.split(SCHEMA_DOC_MARK)[0]
    path.write_text(head + SCHEMA_DOC_MARK + "\n\n" + schema_markdown(schema_path))
    return path


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
            label: _canonical(_merge(theory, overrides))
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
            _check_sweep(exp_name, sweep)
        figure = _canonical(dict(entry.get("figure") or {}))
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
        _check_figure_needs(experiments[exp_name])
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
