"""The jobs' resources in a dry run are the cost model's, per run, and max_runtime splits runs
into simulate_segment jobs (tsmeta.cost)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tsmeta import config as tsconfig
from tsmeta import cost

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "config" / "paper.yaml"
TEST = ROOT / "config" / "test.yaml"
SHORT_RULES = ("tasks", "compare", "figure_data", "figure")


def dry_run(workdir, *args, configfile=PAPER) -> str:
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "-p", "-s", str(ROOT / "Snakefile"),
        "--configfile", str(configfile), "--directory", str(workdir), "--cores", "2", *args,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    return result.stdout


def job_resources(text: str, rule: str = r"\w+") -> dict[str, dict[str, str]]:
    """{run wildcard (and segment): resources} of every job of `rule` in a dry run (the rule's
    name first where every rule is asked for)."""
    jobs = {}
    for block in text.split("\n\n"):
        if not (match := re.search(rf"^rule ({rule}):", block, re.M)) or "wildcards:" not in block:
            continue
        wildcards = re.search(r"wildcards: (.*)", block).group(1)
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block)[1]))
        jobs[wildcards if rule == match[1] else f"{match[1]} {wildcards}"] = resources
    return jobs


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    return dry_run(tmp_path_factory.mktemp("paper"))


@pytest.mark.slow
def test_dry_run_resources_are_the_estimates_of_each_run(paper_dry_run):
    plan = tsconfig.expand(tsconfig.load(PAPER))
    jobs = job_resources(paper_dry_run, "simulate")
    assert len(jobs) == len(plan.runs)
    for wildcards, resources in jobs.items():
        cost = plan.costs[wildcards.removeprefix("run=")]
        assert int(resources["mem_mb"]) == cost.mem_mb
        assert int(resources["runtime"]) == cost.runtime_min
    assert len({r["mem_mb"] for r in jobs.values()}) > 5
    assert len({r["runtime"] for r in jobs.values()}) > 5


@pytest.mark.slow
def test_theory_jobs_ask_for_their_own_estimates(paper_dry_run):
    """The theory of every run with a theory stage, each theory variant and each sweep: the
    cost model's time and memory (tsmeta.cost.theory_cost, sweep_cost), not one fixed guess."""
    plan = tsconfig.expand(tsconfig.load(PAPER))
    expected = {
        "theory": {f"run={run}": c for run, c in plan.theory_costs.items()},
        "theory_variant": {
            f"run={run}, variant={label}": c
            for run, table in plan.variant_costs.items()
            for label, c in table.items()
        },
        "theory_sweep": {f"experiment={name}": c for name, c in plan.sweep_costs.items()},
    }
    for rule, costs in expected.items():
        jobs = job_resources(paper_dry_run, rule)
        assert set(jobs) == set(costs), rule
        for wildcards, resources in jobs.items():
            assert int(resources["runtime"]) == costs[wildcards].runtime_min, wildcards
            assert int(resources["mem_mb"]) == costs[wildcards].mem_mb, wildcards
    runtimes = {int(r["runtime"]) for r in job_resources(paper_dry_run, "theory").values()}
    assert len(runtimes) > 3


@pytest.mark.slow
def test_max_runtime_adds_segment_jobs_within_the_limit(tmp_path):
    text = dry_run(tmp_path, "--config", "max_runtime=120")
    segments = job_resources(text, "simulate_segment")
    plan = tsconfig.expand({**tsconfig.load(PAPER), "max_runtime": 120})
    assert len(segments) == sum(c.segments - 1 for c in plan.costs.values()) > 0
    assert all(int(r["runtime"]) <= 120 for r in segments.values())


@pytest.mark.slow
def test_every_job_asks_for_at_most_max_runtime(tmp_path):
    """A partition shorter than the 30 minutes of the jobs without an estimate of their own
    (tasks, comparisons, figures): they ask for max_runtime instead, and so does no job more."""
    plain = job_resources(dry_run(tmp_path / "plain", configfile=TEST))
    limited = job_resources(
        dry_run(tmp_path / "limited", "--config", "max_runtime=10", configfile=TEST)
    )
    assert set(plain) == set(limited)
    rules = {job.split()[0] for job in limited}
    assert set(SHORT_RULES) <= rules and {"simulate", "theory"} <= rules
    for job, resources in limited.items():
        assert int(resources["runtime"]) <= 10, (job, resources)
        if job.split()[0] in SHORT_RULES:
            assert int(plain[job]["runtime"]) == cost.SHORT_JOB_MIN == 30, job
            assert int(resources["runtime"]) == 10, job
