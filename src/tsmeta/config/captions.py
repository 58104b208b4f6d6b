"""Text of a config in report captions (reStructuredText)."""

from __future__ import annotations

import re


def rst_text(text: str) -> str:
    """`text` as one reStructuredText paragraph that reads literally (report captions):
    whitespace collapsed, and every character that starts inline markup escaped, so that a
    description like `|R_kn|` is not taken for a substitution or a reference."""
    return re.sub(r"([\\`*_|])", r"\\\1", " ".join(str(text).split()))
