"""Reading YAML: a config or the schema, with errors that name the file and line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tsmeta.config.errors import ConfigError

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
