"""Declarative experiments: reading, locating and validating configs, and expanding them into
the Plan of runs and experiments. One module per job:

- `loading`: YAML with the project's loader (1e6 a number, a repeated key an error);
- `locate`: which config files a command reads and how they merge;
- `checks`: the JSON schema, with one message naming the bad key (`validate` returns the Plan);
- `plan`: expanding a config into runs and experiments (`expand`, `Plan`, `Experiment`);
- `captions`: text of a config in report captions (reStructuredText);
- `schema_doc`: the schema as markdown (`tsmeta schema-doc`).

What each figure kind needs and its options: `tsmeta.figure_kinds`.
"""

from tsmeta.config.captions import rst_text
from tsmeta.config.checks import SCHEMA_PATH, non_finite_keys, validate
from tsmeta.config.errors import ConfigError
from tsmeta.config.loading import YAMLLoader, load, loads
from tsmeta.config.locate import DEFAULT_CONFIG, default_config_path, workflow_config
from tsmeta.config.plan import THEORY_DEFAULTS, Experiment, Plan, expand
from tsmeta.config.schema_doc import SCHEMA_DOC_MARK, schema_markdown, write_schema_doc

__all__ = [
    "DEFAULT_CONFIG",
    "SCHEMA_DOC_MARK",
    "SCHEMA_PATH",
    "THEORY_DEFAULTS",
    "ConfigError",
    "Experiment",
    "Plan",
    "YAMLLoader",
    "default_config_path",
    "expand",
    "load",
    "loads",
    "non_finite_keys",
    "rst_text",
    "schema_markdown",
    "validate",
    "workflow_config",
    "write_schema_doc",
]
