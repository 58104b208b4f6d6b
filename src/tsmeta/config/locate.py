"""Which config files a command reads: config/config.yaml where none is given, then
Snakemake's --configfile files and --config overrides merged as Snakemake merges them."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from tsmeta.config.errors import ConfigError
from tsmeta.config.loading import load

DEFAULT_CONFIG = Path("config") / "config.yaml"


def default_config_path(repository: str | os.PathLike | None = None) -> Path:
    """config/config.yaml of the current folder, else of `repository` (default: the
    repository this package is installed from, if it is an editable install); a clear error
    if there is none."""
    here = Path.cwd() / DEFAULT_CONFIG
    if here.exists():
        return DEFAULT_CONFIG
    repository = Path(repository) if repository else Path(__file__).resolve().parents[3]
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
