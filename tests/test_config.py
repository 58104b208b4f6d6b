"""The schema, the dataclass defaults and config/README.md say the same thing."""

import dataclasses
from pathlib import Path

import pytest

from tsmeta import config as tsconfig
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings

ROOT = Path(__file__).resolve().parents[1]
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


def test_every_key_has_a_description_and_a_default():
    for path, spec in _walk(SCHEMA):
        assert spec.get("description"), f"{path}: no description"
        required = {"experiments", "grid", "start", "stop", "num"}
        if path.rsplit(".", 1)[-1] not in required:
            assert "default" in spec, f"{path}: no default"


def test_config_readme_lists_every_key():
    readme = (ROOT / "config" / "README.md").read_text()
    assert tsconfig.schema_markdown() in readme, "regenerate with `tsmeta schema-doc`"
