"""The cost model (tsmeta.cost): refusal at validation, chunks that fit, resources per run."""

import math

import pytest

from tsmeta import config as tsconfig
from tsmeta import cost
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings, TheorySettings

# the case scaled down: the dense sampler's Monte Carlo holds one task's inputs,
# 22000 examples x N = 4000 coordinates (1.0 GB in float32 and float64)
BIG_DENSE = {"N": 4000, "P": 250, "V": 250, "seeds": 2, "alpha_final": 0.002, "n_records": 2}


def dense_config(budget):
    return {
        "memory_budget": budget,
        "simulation": {"sampler": "dense", "mc_tasks": 2},
        "experiments": {"big": {"base": BIG_DENSE, "figure": {"kind": "dynamics"}}},
    }


def test_a_run_over_the_budget_is_refused_naming_run_estimate_and_remedy():
    with pytest.raises(tsconfig.ConfigError) as refused:
        tsconfig.validate(dense_config(800))
    message = str(refused.value)
    name = RunParams(**BIG_DENSE).name()
    assert message.startswith("config key 'memory_budget': run " + name)
    assert "needs about 1470 MB with sampler 'dense'" in message
    assert "one Monte-Carlo task: 1011 MB" in message
    assert "over the budget of 800 MB" in message
    assert "fits with simulation.sampler: 'gram'" in message
    assert "raise memory_budget to at least 1470" in message


def test_the_same_run_fits_a_larger_budget():
    plan = tsconfig.validate(dense_config(2000))
    (only,) = plan.costs.values()
    assert only.sampler == "dense" and only.mem_mb == pytest.approx(1.25 * 1470, abs=2)


def test_a_budget_lowers_the_draw_chunk_and_the_monte_carlo_batch():
    params = RunParams(N=40000, P=50, V=50, seeds=4, alpha_final=0.01, n_records=2)
    settings = SimSettings(sampler="projected", mc_tasks=4, mc_adapt=2000, mc_test=200)
    free = cost.estimate("r", params, settings, {"memory_budget": 10_000})
    tight = cost.estimate("r", params, settings, {"memory_budget": 600})
    assert (free.draw_chunk, tight.draw_chunk) == (64, 16)
    assert tight.peak <= 600 * cost.MB < free.peak
    # the plan hands the smaller chunk to the run's settings (it changes the draws)
    config = {
        "memory_budget": 600,
        "simulation": settings.to_dict(),
        "experiments": {"x": {"base": params.to_dict(), "figure": {"kind": "dynamics"}}},
    }
    plan = tsconfig.validate(config)
    assert plan.sim_settings[params.name()]["draw_chunk"] == 16


def test_the_default_budget_keeps_every_shipped_config_unchanged():
    for name in ("config.yaml", "paper.yaml", "test.yaml"):
        raw = tsconfig.load(f"config/{name}")
        plan = tsconfig.expand(raw)
        unchanged = tsconfig.expand({**raw, "memory_budget": 1e9})
        assert plan.sim_settings == unchanged.sim_settings, name


def test_resources_differ_per_run_and_follow_the_estimate():
    plan = tsconfig.expand(tsconfig.load("config/paper.yaml"))
    mems = {c.mem_mb for c in plan.costs.values()}
    runtimes = {c.runtime_min for c in plan.costs.values()}
    assert len(mems) > 5 and len(runtimes) > 5
    for c in plan.costs.values():
        assert c.mem_mb >= c.peak / cost.MB
        assert c.runtime_min * 60 >= c.simulate_s


def test_max_runtime_splits_a_long_run_into_segments_on_chunk_boundaries():
    raw = tsconfig.load("config/paper.yaml")
    plan = tsconfig.expand({**raw, "max_runtime": 120})
    longest = max(plan.costs.values(), key=lambda c: c.simulate_s)
    assert longest.segments > 1
    assert all(stop % longest.draw_chunk == 0 for stop in longest.stops)
    assert longest.runtime_min <= 120
    assert cost.segment_stops(1000, 64, 3) == (384, 704)
    assert cost.segment_stops(100, 64, 4) == (64,)  # shares smaller than a chunk merge


def test_plan_prints_the_table(capsys):
    from tsmeta.cli import main

    assert main(["plan", "config/test.yaml", "--max-runtime", "60"]) == 0
    out = capsys.readouterr().out
    runs = len(tsconfig.expand(tsconfig.load("config/test.yaml")).runs)
    assert "peak MB" in out and f"total: {runs} runs" in out


# --- the theory stages -------------------------------------------------------------------

THEORY_RUN = RunParams(K=3, M=3, seeds=8, alpha_final=60.0, n_records=30)


@pytest.mark.parametrize(
    "changed, settings",
    [
        ({"seeds": 16}, {}),
        ({"K": 6}, {}),
        ({"algorithm": "anil"}, {}),
        ({"activation": "relu"}, {}),  # RK45 on relu's kinks
    ],
)
def test_theory_estimate_grows_with_what_costs(changed, settings):
    base = cost.theory_seconds(THEORY_RUN, TheorySettings())
    other = RunParams.from_dict({**THEORY_RUN.to_dict(), **changed})
    assert cost.theory_seconds(other, TheorySettings.from_dict(settings)) > 1.5 * base


def test_sde_estimate_counts_paths_and_steps():
    def sde(**settings):
        st = TheorySettings.from_dict({"kind": "sde", **settings})
        return cost.theory_seconds(THEORY_RUN, st) - cost.THEORY_START

    assert sde(realisations=4) == pytest.approx(2 * sde(realisations=2))
    assert sde(fixed_step=0.05) == pytest.approx(2 * sde())  # SDE_STEP = 0.1


def test_theory_estimate_counts_the_noise_bands_only_where_they_exist():
    erf = cost.theory_seconds(THEORY_RUN, TheorySettings())
    linear = RunParams.from_dict({**THEORY_RUN.to_dict(), "activation": "linear"})
    # linear has no linear-noise bands (activation table): the ODE alone
    ode = cost.THEORY_START + 8 * 60.0 * cost.ODE_PER_SEED_ALPHA
    assert cost.theory_seconds(linear, TheorySettings()) == pytest.approx(ode)
    assert erf > ode


def test_sweep_estimate_counts_every_member_of_both_searches():
    one = {"base": {"K": 3, "M": 3}, "grid": {"eta_w": [9.0]}}
    per_member = cost.sweep_seconds(one) - cost.THEORY_START
    both = {"base": {"K": 3, "M": 3}, "grid": {"eta_w": [1.0, 2.0, 3.0]},
            "search_eta_J": [0.1, 0.2]}  # fmt: skip
    assert cost.sweep_seconds(both) - cost.THEORY_START == pytest.approx(5 * per_member)


def sweep_config(max_runtime):
    return {
        "max_runtime": max_runtime,
        "experiments": {
            "big": {
                "stages": [],
                "theory_sweep": {"base": {"algorithm": "anil"},
                                 "grid": {"eta_J": {"start": 0.1, "stop": 10, "num": 30},
                                          "eta_w": {"start": 1, "stop": 30, "num": 30}}},
                "figure": {"kind": "phase_diagram"},
            }
        },
    }  # fmt: skip


def test_a_theory_job_over_max_runtime_is_refused_with_the_remedy():
    plan = tsconfig.validate(sweep_config(None))
    minutes = plan.sweep_costs["big"].seconds / 60
    assert minutes > 20  # 900 ANIL members
    with pytest.raises(tsconfig.ConfigError) as refused:
        tsconfig.validate(sweep_config(20))
    message = str(refused.value)
    assert message.startswith("config key 'max_runtime': the theory sweep of experiment big")
    assert f"estimated at {minutes:.0f} minutes, over max_runtime = 20" in message
    assert "not split into segments" in message
    assert f"raise max_runtime to at least {math.ceil(minutes) + cost.JOB_OVERHEAD_MIN}" in message


def test_theory_jobs_under_max_runtime_ask_for_at_most_it():
    raw = tsconfig.load("config/paper.yaml")
    plan = tsconfig.expand({**raw, "max_runtime": 120})
    jobs = list(plan.theory_costs.values()) + list(plan.sweep_costs.values())
    jobs += [c for table in plan.variant_costs.values() for c in table.values()]
    assert all(c.runtime_min <= 120 for c in jobs)
    assert any(cost.runtime_min(c.seconds) > 30 for c in jobs)  # the limit is not idle
    free = tsconfig.expand(raw)
    assert free.variant_costs.keys() == free.variant_settings.keys()
