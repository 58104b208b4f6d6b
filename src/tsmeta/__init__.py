"""tsmeta: dynamics of meta-learning in the teacher-student scenario (arXiv 2408.12545).

The Python API (docs/api.md): `RunParams`, `simulate`, `theory_of`, `initial_state`,
`open_run`, `open_experiment`, and `tsmeta.plot`. Names are loaded on first use, so that
`import tsmeta` (and parsing the workflow) imports neither torch nor SciPy.
"""

__version__ = "0.1.0"

_API = {
    "RunParams": "tsmeta.params",
    "SimSettings": "tsmeta.settings",
    "TheorySettings": "tsmeta.settings",
    "simulate": "tsmeta.api",
    "theory_of": "tsmeta.api",
    "initial_state": "tsmeta.api",
    "open_run": "tsmeta.api",
    "open_experiment": "tsmeta.api",
}
__all__ = [*_API, "plot"]


def __getattr__(name: str):
    import importlib

    if name == "plot":
        return importlib.import_module("tsmeta.plot")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tsmeta' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
