"""Checking a config against the JSON schema, with one message naming the bad key."""

from __future__ import annotations

import math
import re
from pathlib import Path

from tsmeta.config.errors import ConfigError
from tsmeta.config.loading import load
from tsmeta.config.plan import Plan, expand

# package data; config/schema.yaml links here
SCHEMA_PATH = Path(__file__).parents[1] / "schema.yaml"


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


def validate(config: dict, schema_path: str | Path = SCHEMA_PATH) -> Plan:
    """Check `config` against the JSON schema and the cross-references (ConfigError); the
    Plan it expands into."""
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
    return expand(config)  # semantic checks: every run constructible, figure references valid
