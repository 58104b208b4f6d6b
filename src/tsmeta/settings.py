"""How to simulate and how to integrate (not what): settings, their defaults, the sampler table.

Torch- and SciPy-free, so that parsing a config (the Snakefile, `tsmeta validate`) imports
nothing heavy. None of these settings changes the distribution of the dynamics; they are
written into the netCDF attributes of every output.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tsmeta.algorithms import ALGORITHM_TABLE, ALGORITHMS, algorithm
from tsmeta.params import RunParams

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float64", "float32")
KERNELS = ("auto", "fused", "eager")  # `resolve_kernel`
ODE_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


class _Settings:
    """from_dict with a clear error on unknown keys; to_dict for attributes and checkpoints."""

    @classmethod
    def from_dict(cls, values: dict | None):
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.what} setting(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _check_finite(self) -> None:
        """Every number finite: NaN passes every `<`/`>` check, inf is no setting either."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _check_choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


# --- samplers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler of the task stream: where its class lives and for which runs it is exact.

    `unsupported(params)` returns None where the sampler is exact for the run, else the reason.
    """

    cls: str  # "module:Class", imported only when a simulation starts (torch)
    unsupported: Callable[[RunParams], str | None]

    def load(self):
        module, name = self.cls.split(":")
        return getattr(importlib.import_module(module), name)


def _names(which: Callable) -> list[str]:
    """The algorithms of the table for which `which(line)` holds (for the messages)."""
    return [name for name, line in ALGORITHM_TABLE.items() if which(line)]


def _field_space_only(params: RunParams) -> str | None:
    if not algorithm(params.algorithm).adapts_J:
        return None
    fixed_J = _names(lambda line: not line.adapts_J)
    return (
        f"it is exact only for algorithm in {fixed_J} (an inner step that adapts J moves it "
        f"along the training inputs); got algorithm {params.algorithm!r}"
    )


def _gram_chain(params: RunParams) -> str | None:
    line = algorithm(params.algorithm)
    if line.adapts_J and line.second_order:
        return (
            f"it is not exact for algorithm {params.algorithm!r} (the second-order gradient "
            "needs the inner products of the individual inputs); use sampler 'dense'"
        )
    if line.adapts_J and params.inner_steps > 1:
        return (
            f"it is exact for algorithm {params.algorithm!r} only with inner_steps: 1, got "
            f"inner_steps={params.inner_steps} (later inner steps need the inner products of "
            "the individual inputs); use sampler 'dense' or inner_steps: 1"
        )
    if params.N < params.K + params.M:
        return f"it needs N >= K + M, got N={params.N}, K + M={params.K + params.M}"
    return None


# One line per sampler (docs/simulation.md), fastest first: `auto` takes the first exact one
# in this order (`speed_order`).
SAMPLERS: dict[str, SamplerSpec] = {
    "gram": SamplerSpec("tsmeta.simulation.gram:GramSampler", _gram_chain),
    "projected": SamplerSpec("tsmeta.simulation.samplers:ProjectedSampler", _field_space_only),
    "dense": SamplerSpec("tsmeta.simulation.samplers:DenseSampler", lambda params: None),
}
SAMPLER_CHOICES = ("auto", *SAMPLERS)

# Where gram overtakes projected: projected draws K N more numbers per task (and does
# O(N K (K + M)) more work), gram has a fixed overhead per task (QR and Bartlett factor).
# Measured by `python benchmarks/bench_simulator.py --crossover` (FO-ANIL, 4 seeds, one thread,
# median of 5 alternating measurements; docs/simulation.md): gram / projected speed is
# 0.8-1.0 below N K ~ 100-250 and above 1 beyond, for K + M = 2, 6, 12 and P + V = 20 to 2000
# alike (the field draws they share dilute the ratio at large P + V, they do not move it); at
# N K = 3000 gram is 1.1-1.8 times faster, at N = 1e6 about 450 (P = V = 1000) to 2300
# (P = V = 20) times (`--gram-only`).
GRAM_FROM_NK = 300


def speed_order(params: RunParams) -> list[str]:
    """The samplers from the fastest to the slowest for this run (before exactness)."""
    names = list(SAMPLERS)
    if params.N * params.K < GRAM_FROM_NK:
        names.remove("projected")
        names.insert(0, "projected")
    return names


def resolve_sampler(sampler: str, params: RunParams) -> str:
    """The sampler a run uses: `auto` takes the fastest exact one (`speed_order`); a named
    sampler that is not exact for the run is an error that says why and what to use instead."""
    _check_choice("sampler", sampler, SAMPLER_CHOICES)
    if sampler == "auto":
        return next(n for n in speed_order(params) if SAMPLERS[n].unsupported(params) is None)
    reason = SAMPLERS[sampler].unsupported(params)
    if reason is not None:
        raise ValueError(f"sampler {sampler!r} does not fit this run: {reason}; use 'auto'")
    return sampler


# The Gram sampler's fused kernel (`tsmeta.simulation.gram_fused`): what it implements, and
# from how many seed-tasks `kernel: auto` takes it. A first run compiles it in ~10 s and numba
# caches the machine code (0.3 s to load); eager costs ~20 us more per seed-task at P = V = 50
# (benchmarks/bench_simulator.py --gram-floor), so 50000 seed-tasks repay a first compile.
FUSED_ALGORITHMS = ("fo-anil",)
FUSED_ACTIVATIONS = ("erf", "relu", "linear")
WORTH_FUSING = 50_000


def fused_kernel_unavailable(params: RunParams, settings: SimSettings, device: str) -> str | None:
    """Why the fused kernel cannot run `params` (None: it can); device is 'cpu' or 'cuda'."""
    if device != "cpu":
        return f"device {device!r} (the kernel is CPU code; CUDA runs the batched operations)"
    if params.algorithm not in FUSED_ALGORITHMS:
        return f"algorithm {params.algorithm!r} (the kernel implements {list(FUSED_ALGORITHMS)})"
    if params.activation not in FUSED_ACTIVATIONS:
        return f"activation {params.activation!r} (the kernel has {list(FUSED_ACTIVATIONS)})"
    if params.V < params.K:
        return f"V={params.V} < K={params.K} (the Wishart scale has lower rank)"
    if settings.dtype != "float64":
        return f"dtype {settings.dtype!r} (the Gram state is float64)"
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    return None


def resolve_kernel(params: RunParams, settings: SimSettings, device: str | None = None) -> str:
    """'fused' or 'eager': how the Gram sampler applies tasks (`simulation.kernel`); 'fused'
    asked where the kernel does not apply is an error that says why. device: the resolved
    device type ('cpu' or 'cuda'); None (validation, the cost model: no torch import) reads
    the setting, 'auto' counting as a CPU."""
    if device is None:
        device = "cuda" if settings.device == "cuda" else "cpu"
    reason = fused_kernel_unavailable(params, settings, device)
    if settings.kernel == "fused" and reason:
        raise ValueError(f"simulation.kernel 'fused' does not fit this run: {reason}; use "
                         "'auto' or 'eager'")  # fmt: skip
    if settings.kernel == "eager" or reason:
        return "eager"
    if settings.kernel == "auto" and params.seeds * params.total_steps < WORTH_FUSING:
        return "eager"
    return "fused"


# --- simulation --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimSettings(_Settings):
    """How to simulate: none of these changes the distribution of the dynamics."""

    what = "simulation"

    sampler: str = "auto"
    device: str = "auto"
    dtype: str = "float64"
    normals: str = "float32"  # precision of the standard normals, upcast to dtype
    compile: bool = False  # torch.compile of one task's update (`Sampler.advance`)
    kernel: str = "auto"  # the Gram sampler's FO-ANIL update: fused (numba), eager or auto
    mc_tasks: int = 50
    mc_adapt: int = 20000  # eps_meta_mc is the few-shot error at P = mc_adapt (closed form)
    mc_test: int = 2000
    mc_every: int = 3  # Monte Carlo at every mc_every-th record (and the last); NaN elsewhere
    draw_chunk: int = 64
    mc_batch: int = 0  # Monte-Carlo tasks measured at once; 0: the sampler's (tsmeta.cost)
    checkpoint_every: int = 0  # tasks between checkpoints; 0: no checkpoints
    divergence_threshold: float = 1e6  # on max_k Q_kk

    def __post_init__(self):
        self._check_finite()
        _check_choice("sampler", self.sampler, SAMPLER_CHOICES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("normals", self.normals, DTYPES)
        _check_choice("compile", self.compile, (False, True))
        _check_choice("kernel", self.kernel, KERNELS)
        for key in ("mc_tasks", "mc_adapt", "mc_test", "mc_every", "draw_chunk"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        if self.mc_batch < 0:
            raise ValueError(f"mc_batch must be >= 0, got {self.mc_batch!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every!r}")
        if not self.divergence_threshold > 0:
            raise ValueError(f"divergence_threshold must be > 0, got {self.divergence_threshold!r}")


# --- theory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TheoryKind:
    """A kind of theory: the settings that belong to it (the others must keep their
    defaults) and the stepper that runs it (a name in `theory.steppers.STEPPERS`)."""

    fields: tuple[str, ...]
    stepper: Callable[[TheorySettings], str]
    doc: str


# Discretisation of the noise theories (docs/theory.md, section 12), here so that the cost
# model counts their steps without importing the theory
SDE_STEP = 0.1  # default Euler-Maruyama step in alpha (noiseless Euler vs RK45)
LNA_STEP = 1.0  # largest linear-noise substep in alpha
LNA_MAX_SUBSTEPS = 160  # per integration: the substep grows beyond LNA_STEP for long runs


def lna_substeps(alphas) -> list[int]:
    """Linear-noise substeps per record interval: at most LNA_STEP long, LNA_MAX_SUBSTEPS in
    all (`theory.lna.linear_noise`)."""
    gaps = [b - a for a, b in zip(alphas[:-1], alphas[1:])]
    step = max(LNA_STEP, sum(gaps) / LNA_MAX_SUBSTEPS)
    return [max(1, math.ceil(gap / step - 1e-9)) for gap in gaps]


# One line per kind of theory (docs/theory.md, section 8). Names only: no SciPy here.
THEORY_KINDS: dict[str, TheoryKind] = {
    "ode": TheoryKind(
        fields=(
            "method",
            "rtol",
            "atol",
            "finite_v",
            "finite_p",
            "fixed_step",
            "max_rhs_evals",
            "max_wall_s",
        ),
        stepper=lambda st: "scipy" if st.fixed_step is None else "rk4",
        doc="deterministic order-parameter ODE (N -> infinity)",
    ),
    "sde": TheoryKind(
        fields=(
            "finite_v",
            "finite_p",
            "fixed_step",
            "realisations",
            "max_rhs_evals",
            "max_wall_s",
        ),  # fmt: skip
        stepper=lambda st: "euler-maruyama",
        doc="stochastic order-parameter dynamics at the run's N: Euler-Maruyama with the "
        "diffusion matrix (docs/theory.md, section 12)",
    ),
}


@dataclass(frozen=True)
class TheorySettings(_Settings):
    """How to integrate the order-parameter theory, and which optional terms it includes."""

    what = "theory"

    kind: str = "ode"
    method: str = "RK45"
    rtol: float = 1e-8
    atol: float = 1e-10
    finite_v: bool = True
    finite_p: bool = True  # the O(1/P) terms (docs/theory.md, sections 7, 7a, 7b, 9a)
    fixed_step: float | None = None
    max_rhs_evals: int = 500_000  # a normal run to alpha = 450 needs ~2e3-3e4 (RK45)
    max_wall_s: float | None = 1800.0  # per integration (a run's seeds, a sweep group)
    realisations: int = 1  # noise paths per seed (kind sde)

    def __post_init__(self):
        self._check_finite()
        _check_choice("kind", self.kind, THEORY_KINDS)
        foreign = [
            f.name
            for f in dataclasses.fields(self)
            if f.name != "kind"
            and f.name not in THEORY_KINDS[self.kind].fields
            and getattr(self, f.name) != f.default
        ]
        if foreign:
            raise ValueError(
                f"setting(s) {foreign} do not belong to theory kind {self.kind!r}; its "
                f"settings: {list(THEORY_KINDS[self.kind].fields)}"
            )
        _check_choice("method", self.method, ODE_METHODS)
        if self.fixed_step is not None and not self.fixed_step > 0:
            raise ValueError(f"fixed_step must be > 0 or None, got {self.fixed_step!r}")
        if self.max_wall_s is not None and not self.max_wall_s > 0:
            raise ValueError(f"max_wall_s must be > 0 or None, got {self.max_wall_s!r}")
        for key in ("rtol", "atol", "max_rhs_evals", "realisations"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")

    @classmethod
    def coerce(cls, value: TheorySettings | dict | None) -> TheorySettings:
        return value if isinstance(value, TheorySettings) else cls.from_dict(value)


def attrs_of(settings: Any, prefix: str) -> dict:
    """Settings as netCDF attributes (None -> 'none', bool -> int)."""
    out = {}
    for key, value in settings.to_dict().items():
        if value is None:
            value = "none"
        elif isinstance(value, bool):
            value = int(value)
        out[f"{prefix}{key}"] = value
    return out


__all__ = [
    "ALGORITHMS",
    "SAMPLERS",
    "SamplerSpec",
    "SimSettings",
    "TheorySettings",
    "resolve_kernel",
    "resolve_sampler",
]
