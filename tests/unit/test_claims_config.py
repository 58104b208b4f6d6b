"""The `claims` section of a config: its errors name the key and the allowed values, its
defaults are the code's, and every shipped config's claims can be evaluated on its plan."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from tsmeta import config as tsconfig
from tsmeta.claims import ClaimTest
from tsmeta.paths import ResultPaths

ROOT = Path(__file__).resolve().parents[2]
TEST = tsconfig.load(ROOT / "config" / "test.yaml")
SCHEMA = tsconfig.load(ROOT / "config" / "schema.yaml")


def with_claim(**changes) -> dict:
    config = copy.deepcopy(TEST)
    claim = config["claims"]["reaches_level"]
    for key, value in changes.items():
        if key.startswith("test_"):
            claim["test"][key.removeprefix("test_")] = value
        else:
            claim[key] = value
    return config


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"figure": "nowhere"}, "'claims.reaches_level.figure': 'nowhere' is not an experiment"),
        ({"test_kind": "vote"}, "'claims.reaches_level.test.kind': 'vote' is not allowed"),
        ({"test_groups": [{"K": 3}]}, "'claims.reaches_level.test.groups': not a parameter of "
                                      "test kind 'fraction'"),
        ({"test_max_fraction": 0.5}, "'claims.reaches_level.test.min_fraction': give exactly one"),
        ({"test_quantity": "escape_alpha"}, "'claims.reaches_level.test.quantity': a fraction "
                                            "counts a 0/1 quantity"),
        ({"test_level": -1}, "'claims.reaches_level.test.level': -1 is out of range"),
        ({"test_runs": {"colour": 1}}, "claims.reaches_level.test.runs"),
    ],
)  # fmt: skip
def test_a_bad_claim_names_its_key(changes, message):
    with pytest.raises(tsconfig.ConfigError) as info:
        tsconfig.validate(with_claim(**changes))
    assert message in str(info.value)


@pytest.mark.parametrize(
    "name,changes,reason",
    [
        ("reaches_level", {"experiments": ["nowhere"]}, "experiment(s) ['nowhere'] not in"),
        ("reaches_level", {"test_runs": {"init": "sideways"}},
         "no run of ['dynamics'] (simulate) matches {'init': 'sideways'}"),
        ("failure_large_rates", {"experiments": ["dynamics"]}, "no theory sweep in ['dynamics']"),
    ],
)  # fmt: skip
def test_a_claim_the_config_cannot_answer_is_left_out_with_its_reason(name, changes, reason):
    config = copy.deepcopy(TEST)
    for key, value in changes.items():
        if key.startswith("test_"):
            config["claims"][name]["test"][key.removeprefix("test_")] = value
        else:
            config["claims"][name][key] = value
    plan = tsconfig.validate(config)
    assert reason in plan.claims_left_out[name]
    assert name not in {c for c in plan.claims if c not in plan.claims_left_out}
    # a config trimmed to one experiment still validates; its other claims are left out
    config["experiments"] = {"dynamics": config["experiments"]["dynamics"]}
    plan = tsconfig.validate(config)
    assert set(plan.claims_left_out) == {
        "minimal_eta_J_grows_with_K",
        "failure_large_rates",
        "overparam_reach",
    } | ({name} - {"failure_large_rates"})
    assert set(ResultPaths(plan.results).claim_inputs(plan)) == {"dynamics"}


def test_schema_defaults_of_a_claims_test_are_the_code_defaults():
    properties = SCHEMA["$defs"]["claim_test"]["properties"]
    defaults = {f.name: f.default for f in dataclasses.fields(ClaimTest)}
    defaults |= {f.name: f.default_factory() for f in dataclasses.fields(ClaimTest)
                 if f.default_factory is not dataclasses.MISSING}  # fmt: skip
    assert set(properties) == set(defaults)
    for key, spec in properties.items():
        if key != "kind":
            assert spec["default"] == defaults[key], key


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "paper.yaml"])
def test_every_shipped_config_has_claims_its_results_can_answer(name):
    plan = tsconfig.validate(tsconfig.load(ROOT / "config" / name))
    assert plan.claims
    paths = ResultPaths(plan.results)
    inputs = paths.claim_inputs(plan)
    assert set(inputs) == {e for c in plan.claims.values() for e in c["experiments"]}
    assert set(paths.claim_files(plan)) <= set(paths.result_files(plan))
    assert paths.claims_files(plan) == [f"{plan.results}/claims.nc", f"{plan.results}/claims.md"]
