"""The schema, the dataclass defaults and config/README.md say the same thing."""

import dataclasses
from pathlib import Path

import pytest

from tsmeta import config as tsconfig
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = tsconfig.load(ROOT / "config" / "schema.yaml")


@pytest.mark.parametrize(
    "section,defaults",
    [
        ("run_params", RunParams().to_dict()),
        ("simulation", dataclasses.asdict(SimSettings())),
        ("theory", tsconfig.THEORY_DEFAULTS),
    ],
)
def test_schema_defaults_are_the_code_defaults(section, defaults):
    properties = SCHEMA["$defs"][section]["properties"]
    assert set(properties) == set(defaults)
    for key, spec in properties.items():
        assert spec["default"] == defaults[key], key


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, spec in (node.get("properties") or {}).items():
            yield f"{path}.{key}", spec
            yield from _walk(spec, f"{path}.{key}")
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                yield from _walk(node[key], path)
        for key, spec in (node.get("$defs") or {}).items():
            yield from _walk(spec, f"$defs.{key}")


FIGURE = SCHEMA["$defs"]["experiment"]["properties"]["figure"]["properties"]


def _per_kind_defaults(key) -> dict:
    """{kind: default of option `key`} over the kinds that have it (figure_kinds)."""
    from tsmeta.figure_kinds import KINDS, option_defaults

    return {kind: option_defaults(kind)[key] for kind in KINDS if key in option_defaults(kind)}


def test_every_key_has_a_description_and_a_default():
    for path, spec in _walk(SCHEMA):
        assert spec.get("description"), f"{path}: no description"
        required = {"experiments", "grid", "start", "stop", "num", "statement", "test"}
        key = path.rsplit(".", 1)[-1]
        if path == "$defs.claim_test.kind":  # a claim's test names its kind
            continue
        per_kind = (
            path.endswith(f"figure.{key}")
            and len(set(map(repr, _per_kind_defaults(key).values()))) > 1
        )
        if key not in required and not per_kind:
            assert "default" in spec, f"{path}: no default"


def test_the_figure_options_of_the_schema_are_those_of_the_registry():
    """Kind enum, option names and defaults: the schema and figure_kinds agree. An option
    whose default differs between kinds has none in the schema (config/README.md then lists
    the defaults per kind)."""
    from tsmeta.figure_kinds import KINDS, option_fields

    assert sorted(FIGURE["kind"]["enum"]) == sorted(KINDS)
    assert FIGURE["kind"]["default"] == "dynamics"
    options = {name for kind in KINDS for name in option_fields(kind)}
    assert set(FIGURE) - {"kind"} == options
    for key in options:
        defaults = {repr(value) for value in _per_kind_defaults(key).values()}
        if "default" in FIGURE[key]:
            assert defaults == {repr(FIGURE[key]["default"])}, key
        else:
            assert len(defaults) > 1, f"{key}: one default for every kind; give it in the schema"


def test_every_option_field_has_a_default_and_says_whether_it_is_data():
    from tsmeta.figure_kinds import KINDS, option_fields

    for name, kind in KINDS.items():
        kind.options()  # every field has a default
        for field in option_fields(name).values():
            assert field.metadata.get("data", False) in (True, False), (name, field.name)


def test_the_compare_window_defaults_to_the_first_level():
    from tsmeta.params import DEFAULT_LEVELS

    compare = SCHEMA["$defs"]["experiment"]["properties"]["compare"]["properties"]
    assert compare["level"]["default"] == DEFAULT_LEVELS[0]
    assert compare["alpha_end"]["default"] is None
    plan = tsconfig.validate(tsconfig.load(ROOT / "config" / "test.yaml"))
    assert plan.experiments["dynamics"].compare == {"alpha_end": None, "level": DEFAULT_LEVELS[0]}
    assert plan.experiments["finite_size"].compare["alpha_end"] == 2.0


def test_validate_returns_the_plan():
    config = tsconfig.load(ROOT / "config" / "test.yaml")
    plan = tsconfig.validate(config)
    assert isinstance(plan, tsconfig.Plan)
    assert plan.runs == tsconfig.expand(config).runs


def test_config_readme_lists_every_key():
    readme = (ROOT / "config" / "README.md").read_text()
    assert tsconfig.schema_markdown() in readme, "regenerate with `tsmeta schema-doc`"


def test_the_schema_enums_are_the_registries():
    """A name added to a registry (activations, algorithms, samplers, theory kinds) is allowed
    by the schema, and the schema allows nothing the code lacks."""
    from tsmeta.activations import ACTIVATIONS
    from tsmeta.algorithms import ALGORITHMS
    from tsmeta.settings import SAMPLERS, THEORY_KINDS

    defs = SCHEMA["$defs"]
    assert defs["run_params"]["properties"]["activation"]["enum"] == list(ACTIVATIONS)
    assert defs["run_params"]["properties"]["algorithm"]["enum"] == list(ALGORITHMS)
    assert defs["simulation"]["properties"]["sampler"]["enum"] == ["auto", *SAMPLERS]
    assert defs["theory"]["properties"]["kind"]["enum"] == list(THEORY_KINDS)


def test_an_sde_variant_needs_an_activation_with_a_diffusion_matrix():
    cfg = tsconfig.load(ROOT / "config" / "test.yaml")
    cfg["experiments"]["activations"]["theory_variants"] = {"sde": {"kind": "sde"}}
    with pytest.raises(tsconfig.ConfigError, match=r"theory_variants\.sde\.kind.*'relu'"):
        tsconfig.expand(cfg)
