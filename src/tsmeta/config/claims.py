"""Checking the `claims` section against the plan: every experiment, figure and choice of
runs a claim names exists, and its test's parameters fit its kind."""

from __future__ import annotations

from tsmeta.claims.inputs import matches
from tsmeta.claims.spec import READS_RUNS, ClaimTest
from tsmeta.config.errors import ConfigError


def check_claim(name: str, claim: dict, experiments: dict, runs: dict) -> None:
    where = f"config key 'claims.{name}"
    unknown = [exp for exp in claim["experiments"] if exp not in experiments]
    if unknown:
        raise ConfigError(
            f"{where}.experiments': {unknown} not among the experiments; allowed values: "
            f"{list(experiments)}"
        )
    if claim.get("figure") and claim["figure"] not in experiments:
        raise ConfigError(
            f"{where}.figure': {claim['figure']!r} is not an experiment's figure; allowed "
            f"values: {list(experiments)}"
        )
    try:
        test = ClaimTest.from_dict(claim["test"])
    except ValueError as exc:  # "<parameter>: <what is wrong>"
        key, _, text = str(exc).partition(": ")
        raise ConfigError(f"{where}.test.{key}': {text}") from exc
    read = [experiments[exp] for exp in claim["experiments"]]
    if test.kind in READS_RUNS:
        stage = "simulate" if test.source == "sim" else "theory"
        names = [r for exp in read if stage in exp.stages for r in exp.runs]
        for chosen in test.choices():
            if not any(matches(runs[r], chosen) for r in names):
                raise ConfigError(
                    f"{where}.test': no run of {claim['experiments']} with stage {stage!r} "
                    f"matches {chosen} (see `tsmeta runs`)"
                )
    elif not any(exp.theory_sweep for exp in read):
        raise ConfigError(
            f"{where}.test.kind': {test.kind!r} reads a theory sweep; none of "
            f"{claim['experiments']} has a `theory_sweep`"
        )


def check_claims(claims: dict, experiments: dict, runs: dict) -> None:
    """ConfigError naming the claim's key where a claim cannot be evaluated on the plan."""
    for name, claim in claims.items():
        check_claim(name, claim, experiments, runs)
