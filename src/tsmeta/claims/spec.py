"""A claim's test as the config gives it (`claims.<name>.test`): its kind and parameters,
with the defaults of the schema, and the checks that name the bad key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tsmeta.claims.quantities import QUANTITIES

KIND_PARAMETERS = {
    "fraction": (
        "runs", "source", "quantity", "level", "alpha", "min_fraction", "max_fraction",
        "confidence",
    ),
    "difference": (
        "runs", "groups", "source", "quantity", "level", "alpha", "expect", "z", "confidence",
    ),
    "power_law": ("rate", "x", "level", "select", "value", "alternative", "z", "tolerance"),
    "region": ("measure", "level", "alpha", "x", "select", "expect", "z"),
}  # fmt: skip
EXPECTATIONS = {
    "difference": ("greater", "less"),
    "region": ("grows", "shrinks", "exists"),
}
READS_RUNS = ("fraction", "difference")  # the others read the experiment's theory sweep


@dataclass(frozen=True)
class ClaimTest:
    """The parameters of every kind (config/README.md, `claims.<name>.test`); a kind reads
    those of KIND_PARAMETERS."""

    kind: str
    runs: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)
    source: str = "sim"
    quantity: str = "reached"
    level: float = 0.01
    alpha: float | None = None
    min_fraction: float | None = None
    max_fraction: float | None = None
    expect: str = "greater"
    confidence: float = 0.95
    z: float = 2.0
    x: str | None = "K"
    rate: str = "eta_J"
    select: dict = field(default_factory=dict)
    value: float = 1.0
    alternative: float | None = None
    tolerance: float = 0.0
    measure: str = "success"

    @classmethod
    def from_dict(cls, values: dict) -> ClaimTest:
        """The test of a config entry; ValueError naming the key that its kind does not
        have or that it lacks."""
        kind = values.get("kind")
        if kind not in KIND_PARAMETERS:
            raise ValueError(f"kind: {kind!r} is not a test kind; allowed: {list(KIND_PARAMETERS)}")
        allowed = KIND_PARAMETERS[kind]
        extra = sorted(set(values) - set(allowed) - {"kind"})
        if extra:
            raise ValueError(
                f"{extra[0]}: not a parameter of test kind {kind!r}; allowed: {sorted(allowed)}"
            )
        test = cls(**values)
        test.check()
        return test

    def check(self) -> None:
        if self.kind == "fraction" and (self.min_fraction is None) == (self.max_fraction is None):
            raise ValueError("min_fraction: give exactly one of min_fraction and max_fraction")
        if self.kind in ("fraction", "difference") and self.quantity not in QUANTITIES:
            raise ValueError(f"quantity: allowed: {list(QUANTITIES)}")
        if self.kind == "fraction" and not QUANTITIES[self.quantity].binary:
            binary = [name for name, q in QUANTITIES.items() if q.binary]
            raise ValueError(f"quantity: a fraction counts a 0/1 quantity; allowed: {binary}")
        if self.kind == "difference" and len(self.groups) < 2:
            raise ValueError("groups: a difference needs at least two groups of runs")
        allowed = EXPECTATIONS.get(self.kind)
        if allowed and self.expect not in allowed:
            raise ValueError(f"expect: {self.expect!r} is not allowed; allowed values: {allowed}")

    def choices(self) -> list[dict]:
        """The run choices the test reads: each group merged onto `runs`, or `runs`."""
        return [{**self.runs, **group} for group in self.groups] or [dict(self.runs)]


def matches(params, chosen: dict) -> bool:
    """Whether a run's parameters (RunParams or a dict) have every value of `chosen` (a
    list: any of its values; numbers compared to a relative 1e-6, so 3.4641016 picks
    sqrt(12))."""
    values = params if isinstance(params, dict) else params.to_dict()
    for key, wanted in chosen.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(same_value(values.get(key), option) for option in options):
            return False
    return True


def same_value(a, b) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a == b
