"""Run parameters: the physics of one run, its name, and its alpha grid.

A *run* is one parameter set simulated for several seeds at once. Every field of
`RunParams` is a config key (see `config/schema.yaml`) and is written into the
netCDF attributes of every file the run produces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, fields

import numpy as np

from tsmeta import activations
from tsmeta.activations import DEFAULT_ACTIVATION
from tsmeta.algorithms import ALGORITHMS

INITS = ("random", "symmetric")
TEACHER_INITS = ("gaussian", "orthonormal")
ALPHA_GRIDS = ("log", "linear")
NAME_KEYS = ("K", "M", "N", "eta_J", "eta_w")  # always in a run name
DEFAULT_LEVELS = (0.01, 0.001)  # eps_meta levels: first stage learnt, units aligned one-to-one
FIRST_STAGE_LEVEL = DEFAULT_LEVELS[0]  # the first stage ends where eps_meta falls below it
ESCAPE_LEVEL = DEFAULT_LEVELS[1]  # eps_meta below it: the units have escaped the plateau
ALPHA_MIN = 0.01  # first positive record of a log alpha grid


@dataclass(frozen=True)
class RunParams:
    """Physical parameters of one run (docs/model.md); defaults are the paper's first experiment."""

    algorithm: str = "fo-anil"
    activation: str = DEFAULT_ACTIVATION  # g of students and teachers (tsmeta.activations)
    N: int = 200
    K: int = 3
    M: int = 3
    P: int = 200
    V: int = 200
    eta_J: float = 3.0
    eta_w: float = 9.0
    eta_w0: float | None = None  # None: eta_J
    eta_J_inner: float | None = None  # None: eta_J (MAML, FO-MAML only)
    inner_steps: int = 1
    gamma: float = 1.0
    u_mean: float = 0.0
    u_std: float = 1.0
    noise_std: float = 0.0
    init_std: float = 1.0
    w0_std: float = 0.0
    init: str = "random"
    init_perturbation: float = 0.01
    teacher_init: str = "gaussian"
    alpha_final: float = 450.0
    n_records: int = 60
    alpha_grid: str = "log"
    seeds: int = 4
    seed_offset: int = 0

    def __post_init__(self):
        for f in fields(self):  # NaN passes every comparison below; inf is no rate either
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")
        _check_choice("algorithm", self.algorithm, ALGORITHMS)
        activations.activation(self.activation)  # an unknown name: error naming the allowed
        _check_choice("init", self.init, INITS)
        _check_choice("teacher_init", self.teacher_init, TEACHER_INITS)
        _check_choice("alpha_grid", self.alpha_grid, ALPHA_GRIDS)
        for key in ("N", "K", "M", "P", "V", "inner_steps", "seeds", "n_records"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        for key in ("eta_J", "eta_w", "eta_w0", "eta_J_inner", "u_std", "noise_std", "init_std"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(f"{key} must be >= 0, got {value!r}")
        if self.alpha_final <= 0:
            raise ValueError(f"alpha_final must be > 0, got {self.alpha_final!r}")

    # --- derived quantities -------------------------------------------------
    @property
    def eta_w0_eff(self) -> float:
        return self.eta_J if self.eta_w0 is None else self.eta_w0

    @property
    def eta_J_inner_eff(self) -> float:
        return self.eta_J if self.eta_J_inner is None else self.eta_J_inner

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    @property
    def total_steps(self) -> int:
        """Number of outer steps (tasks): alpha_final * N, rounded."""
        return int(round(self.alpha_final * self.N))

    def record_steps(self) -> np.ndarray:
        """Outer-step counts t at which observables are recorded (always includes 0 and the end)."""
        return record_steps(self.N, self.alpha_final, self.n_records, self.alpha_grid)

    def alphas(self) -> np.ndarray:
        return self.record_steps() / self.N

    # --- (de)serialisation --------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown run parameter(s) {unknown}; allowed keys: {sorted(known)}")
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})

    def name(self) -> str:
        """Readable directory name that identifies the parameters exactly.

        The algorithm, then `key~value` for K, M, N, eta_J, eta_w and for every other key
        that differs from its default, joined by `_` (in the spirit of Snakemake's
        Paramspace), e.g. `fo-anil_K~3_M~3_N~200_eta_J~3_eta_w~9_init~symmetric`. Numbers
        are written in full (the shortest text that reads back as the same float, `3.0` as
        `3`), so two different parameter sets never share a name.
        """
        default = RunParams()
        values = self.to_dict()
        parts = [self.algorithm] + [f"{k}~{_fmt(values[k])}" for k in NAME_KEYS]
        parts += [
            f"{k}~{_fmt(v)}"
            for k, v in sorted(values.items())
            if k not in NAME_KEYS and k != "algorithm" and getattr(default, k) != v
        ]
        return "_".join(parts)

    def digest(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


def log_alpha_grid(alpha_final: float, n: int, first: float = ALPHA_MIN) -> np.ndarray:
    """0, then n log-spaced times from `first` to alpha_final (the records of every curve)."""
    return np.concatenate([[0.0], np.geomspace(first, max(alpha_final, first), n)])


def record_steps(N: int, alpha_final: float, n_records: int, grid: str) -> np.ndarray:
    """Outer steps of the records: the alpha grid in units of tasks, rounded to whole steps."""
    total = int(round(alpha_final * N))
    if grid == "linear":
        steps = np.linspace(0, total, n_records + 1)
    else:  # the log grid in steps; alpha = ALPHA_MIN, but at least one step, comes first
        steps = log_alpha_grid(total, n_records, first=max(1.0, ALPHA_MIN * N))
    return np.unique(np.round(steps).astype(np.int64).clip(0, total))


# --- theory-sweep grids (theory.sweeps integrates them; config validation checks them) ----

SWEEP_KEYS = ("base", "grid", "levels", "search_eta_J", "batch")


def axis_values(spec) -> list:
    """Values of one axis: a list, or {start, stop, num, scale: linear|log}."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num", "scale"})
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise ValueError(f"range spec needs start, stop, num (and scale), got {spec!r}")
        scale = spec.get("scale", "linear")
        num = int(spec["num"])
        if scale == "log":
            if spec["start"] <= 0 or spec["stop"] <= 0:
                raise ValueError(f"a log range needs positive start and stop, got {spec!r}")
            values = np.geomspace(spec["start"], spec["stop"], num)
        elif scale == "linear":
            values = np.linspace(spec["start"], spec["stop"], num)
        else:
            raise ValueError(f"scale must be linear or log, got {scale!r}")
        return [float(v) for v in values]
    if isinstance(spec, (list, tuple)) and len(spec) >= 1:
        return list(spec)
    raise ValueError(f"an axis is a non-empty list or a range spec, got {spec!r}")


def searches(sweep: dict) -> dict[str, dict[str, list]]:
    """The searches of a sweep: name -> {axis: values} ('main', and 'eta_J' if requested)."""
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"unknown theory_sweep key(s) {unknown}; allowed: {list(SWEEP_KEYS)}")
    batch = sweep.get("batch", 0)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        raise ValueError(
            f"theory_sweep.batch must be an integer >= 0 (members per system, 0: a whole "
            f"group), got {batch!r}"
        )
    grid = sweep.get("grid") or {}
    if not grid:
        raise ValueError("theory_sweep.grid needs at least one axis")
    main = {}
    for name, spec in grid.items():
        values = axis_values(spec)
        coerced = [getattr(RunParams.from_dict({name: v}), name) for v in values]
        if len(set(coerced)) != len(coerced):
            raise ValueError(f"theory_sweep.grid.{name} has repeated values {coerced}")
        main[name] = coerced
    out = {"main": main}
    if sweep.get("search_eta_J") is not None:
        if "eta_J" in main:
            raise ValueError("search_eta_J needs a grid without an eta_J axis")
        jvals = [
            RunParams.from_dict({"eta_J": v}).eta_J for v in axis_values(sweep["search_eta_J"])
        ]
        out["eta_J"] = {**{k: v for k, v in main.items() if k != "eta_w"}, "eta_J": jvals}
    return out


def sweep_points(plan: dict):
    """(search, flat index, {axis: value}) of every member of the searches `plan`
    (`searches`): the cartesian product of each search's axes, in their order."""
    for name, axes in plan.items():
        keys = list(axes)
        for flat, values in enumerate(itertools.product(*(axes[k] for k in keys))):
            yield name, flat, dict(zip(keys, values))


def _check_choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


def _coerce(cls, key, value):
    kind = {f.name: f.type for f in fields(cls)}[key]
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if kind in ("float", "float | None"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value) + 0.0  # -0.0 -> 0.0: one parameter set, one name
    return value


def _fmt(value) -> str:
    """Exact and short: repr of a float is the shortest text that reads back as the same
    float (0.1 -> '0.1', 3.0000001 -> '3.0000001'); a trailing '.0' is dropped."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)
