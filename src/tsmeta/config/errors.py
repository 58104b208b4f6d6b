"""The error every config check raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is allowed."""
