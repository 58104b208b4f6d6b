"""Checking the `claims` section against the plan: a claim's test must fit its kind (an
error naming the key), and a claim whose experiments or runs this config does not have is
left out of the evaluation, with the reason, so that a config trimmed to a few experiments
still runs (its claims table says what it left out)."""

from __future__ import annotations

from tsmeta.claims.spec import READS_RUNS, ClaimTest, matches
from tsmeta.config.errors import ConfigError


def parsed_test(name: str, claim: dict) -> ClaimTest:
    try:
        return ClaimTest.from_dict(claim["test"])
    except ValueError as exc:  # "<parameter>: <what is wrong>"
        key, _, text = str(exc).partition(": ")
        raise ConfigError(f"config key 'claims.{name}.test.{key}': {text}") from exc


def missing(claim: dict, test: ClaimTest, experiments: dict, runs: dict) -> str:
    """Why the plan cannot evaluate the claim ("" where it can)."""
    absent = [exp for exp in claim["experiments"] if exp not in experiments]
    if absent:
        return f"experiment(s) {absent} not in this config"
    read = [experiments[exp] for exp in claim["experiments"]]
    if test.kind not in READS_RUNS:
        has_sweep = any(exp.theory_sweep for exp in read)
        return "" if has_sweep else f"no theory sweep in {claim['experiments']}"
    stage = "simulate" if test.source == "sim" else "theory"
    names = [r for exp in read if stage in exp.stages for r in exp.runs]
    for chosen in test.choices():
        if not any(matches(runs[r], chosen) for r in names):
            return f"no run of {claim['experiments']} ({stage}) matches {chosen}"
    return ""


def check_claims(claims: dict, experiments: dict, runs: dict) -> dict:
    """{name: reason} of the claims this plan cannot evaluate; a ConfigError naming the key
    for a test that does not fit its kind, or for an evaluated claim whose figure is not an
    experiment's."""
    left_out = {}
    for name, claim in claims.items():
        reason = missing(claim, parsed_test(name, claim), experiments, runs)
        if reason:
            left_out[name] = reason
        elif claim.get("figure") and claim["figure"] not in experiments:
            raise ConfigError(
                f"config key 'claims.{name}.figure': {claim['figure']!r} is not an "
                f"experiment's figure; allowed values: {list(experiments)}"
            )
    return left_out
