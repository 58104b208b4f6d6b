"""What a claim's test returns: a statistic with its uncertainty, the runs it used, a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HOLDS = "holds"
HOLDS_UNDER_CONDITIONS = "holds under stated conditions"
NOT_SEEN = "not seen at this scale"
CONTRADICTED = "contradicted"
VERDICTS = (HOLDS, HOLDS_UNDER_CONDITIONS, NOT_SEEN, CONTRADICTED)


@dataclass
class Group:
    """One group of a test (a K, a start): its value, standard error, interval and size."""

    label: str
    value: float
    error: float
    lower: float
    upper: float
    n: int


@dataclass
class Outcome:
    """A claim's test on the results: `statistic` names what `value` is; `error` is its
    standard error, [lower, upper] its interval (NaN where the test has none); `n` counts
    what it was computed from (seeds, thresholds, grid cells), `sources` the runs or sweeps;
    `verdict` one of VERDICTS; `note` says why, in a few words."""

    statistic: str
    value: float
    error: float
    lower: float
    upper: float
    n: int
    sources: list[str]
    verdict: str
    note: str = ""
    groups: list[Group] = field(default_factory=list)


def interval_verdict(lower: float, upper: float, minimum=None, maximum=None, censored=False):
    """Verdict of a fraction whose interval is [lower, upper] against `minimum` (the claim:
    at least this fraction) or `maximum` (at most): holds where the whole interval is on
    the claimed side, contradicted where it is wholly on the other, else not seen. While
    some seeds are `censored` (their runs end before the claim's alpha, so a seed not there
    yet may get there later), a fraction can only grow: no "contradicted" against a
    minimum, no "holds" against a maximum."""
    if math.isnan(lower):
        return NOT_SEEN
    if minimum is not None:
        if lower >= minimum:
            return HOLDS
        return CONTRADICTED if upper < minimum and not censored else NOT_SEEN
    if upper <= maximum and not censored:
        return HOLDS
    return CONTRADICTED if lower > maximum else NOT_SEEN


def signed_verdict(value: float, error: float, z: float, sign: int) -> str:
    """Verdict of a statistic claimed to be positive (sign +1) or negative (-1): holds at
    `z` standard errors on the claimed side, contradicted at `z` on the other, else not
    seen. A zero error (e.g. two fractions both 1) decides by the sign alone."""
    if not math.isfinite(value):
        return NOT_SEEN
    t = sign * value / error if error > 0 else math.copysign(math.inf, sign * value)
    if sign * value == 0:
        return NOT_SEEN
    if t >= z:
        return HOLDS
    return CONTRADICTED if t <= -z else NOT_SEEN
