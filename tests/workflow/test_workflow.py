"""The Snakemake workflow end to end on the tiny config, and the command line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsmeta import config as tsconfig
from tsmeta.io import open_dataset
from tsmeta.paths import ResultPaths

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def snakemake(workdir, *args, config=TEST_CONFIG, check=True):
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
        "--configfile", str(config), "--directory", str(workdir), "--cores", "2", *args,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_workflow_produces_data_and_figures(finished_workflow):
    results = finished_workflow / "results"
    runs = sorted((results / "runs").iterdir())
    assert len(runs) >= 3
    for run in runs:
        sim = open_dataset(run / "sim.nc", stage="simulate")
        for name in ("R", "Q", "w0", "T", "eps_meta", "eps_meta_mc", "diverged"):
            assert name in sim, name
        assert set(sim["R"].dims) == {"seed", "alpha", "k", "n"}
        assert sim.attrs["run_name"] == run.name
        theory = open_dataset(run / "theory.nc", stage="theory")
        assert (theory["alpha"].values == sim["alpha"].values).all()
    compare = open_dataset(results / "experiments" / "dynamics" / "compare.nc", stage="compare")
    assert "dev_eps_meta" in compare
    for ext in ("png", "pdf"):
        figure = results / "figures" / f"dynamics.{ext}"
        assert figure.stat().st_size > 10_000
    data = open_dataset(results / "figures" / "dynamics.nc", stage="figure_data")
    assert data.attrs["kind"] == "dynamics" and data.attrs["experiment"] == "dynamics"
    assert json.loads(data.attrs["data_options"]) == {"thresholds": [0.01, 0.001]}
    inputs = json.loads(data.attrs["inputs"])
    assert {i["role"] for i in inputs} == {"sims", "theories", "compare"}
    assert all(i["role"] == "compare" or i["run_name"] in i["path"] for i in inputs)


@pytest.mark.slow
def test_second_run_has_nothing_to_do(finished_workflow):
    out = snakemake(finished_workflow, "--dry-run")
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.slow
def test_bad_config_stops_before_any_job(tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["experiments"]["dynamics"]["base"]["algorithm"] = "reptile"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = snakemake(tmp_path, config=bad, check=False)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "experiments.dynamics.base.algorithm" in message
    assert "fo-anil" in message  # the allowed values are listed
    assert not (tmp_path / "results").exists()


def test_command_line_runs_the_stages(tmp_path):
    tsmeta = shutil.which("tsmeta") or "tsmeta"
    common = [
        "--config",
        str(TEST_CONFIG),
        "--set",
        "N=20",
        "--set",
        "alpha_final=0.5",
        "--set",
        "seeds=1",
    ]
    for cmd in (
        ["tasks", "--out", str(tmp_path / "tasks.nc")],
        ["simulate", "--tasks", str(tmp_path / "tasks.nc"), "--out", str(tmp_path / "sim.nc")],
        ["theory", "--tasks", str(tmp_path / "tasks.nc"), "--out", str(tmp_path / "theory.nc")],
    ):
        subprocess.run(
            [tsmeta, cmd[0], *common, *cmd[1:]], check=True, capture_output=True, timeout=300
        )
    sim = open_dataset(tmp_path / "sim.nc", stage="simulate")
    assert sim.attrs["param_N"] == 20
    bad_cmd = [tsmeta, "tasks", *common, "--set", "K=0", "--out", str(tmp_path / "x.nc")]
    bad = subprocess.run(bad_cmd, capture_output=True, text=True)
    assert bad.returncode == 2 and "K must be an integer >= 1" in bad.stderr
    assert not (tmp_path / "x.nc").exists()


def test_result_paths_spell_the_documented_layout():
    paths = ResultPaths("out")
    assert paths.tasks("r") == "out/runs/r/tasks.nc"
    assert paths.sim("r") == "out/runs/r/sim.nc"
    assert paths.theory("r") == "out/runs/r/theory.nc"
    assert paths.theory("r", "nofv") == "out/runs/r/theory_nofv.nc"
    assert paths.checkpoint("r") == "out/runs/r/sim.ckpt"
    assert paths.compare("e") == "out/experiments/e/compare.nc"
    assert paths.sweep("e") == "out/experiments/e/sweep.nc"
    assert paths.figure("e", "pdf") == "out/figures/e.pdf"
    assert paths.log("theory_{variant}", "{run}") == "out/logs/theory_{variant}/{run}.log"


def test_the_rules_and_tsmeta_check_see_the_same_result_files(tmp_path):
    """Every output and log of a dry run is where tsmeta.paths puts it, and the data files
    are exactly those `tsmeta check` opens (ResultPaths.result_files)."""
    out = snakemake(tmp_path, "--dry-run", "--forceall")
    outputs, logs = set(), set()
    for line in out.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("output", "log"):
            (outputs if key == "output" else logs).update(value.split(", "))
    plan = tsconfig.expand(tsconfig.load(TEST_CONFIG))
    paths = ResultPaths(plan.results)
    figures = set(paths.figure_files(plan))
    claims = {paths.claims("nc"), paths.claims("md")} if plan.claims else set()
    assert claims <= outputs
    assert outputs - figures - claims == set(paths.result_files(plan))
    assert figures <= outputs
    runs = {Path(f).parent.name for f in outputs if "/runs/" in f}
    assert {paths.log("simulate", r) for r in runs} <= logs
    assert all(f.startswith(f"{plan.results}/logs/") and f.endswith(".log") for f in logs)


def _planned_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, rule = set(), None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            jobs.add((rule, ""))
        elif line.startswith("wildcards:") and rule:
            jobs.discard((rule, ""))
            jobs.add((rule, line.removeprefix("wildcards:").strip()))
    return jobs


def _edited_config(tmp_path, edit) -> Path:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    edit(config)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # claim order is the table's
    return path


@pytest.mark.slow
def test_editing_one_rate_reruns_only_that_experiment(finished_workflow, tmp_path):
    def edit(config):
        config["experiments"]["dynamics"]["base"]["eta_J"] = 2.5

    out = snakemake(finished_workflow, "--dry-run", config=_edited_config(tmp_path, edit))
    jobs = _planned_jobs(out.stdout)
    assert jobs, out.stdout
    for rule, wildcards in jobs:
        if rule in ("tasks", "simulate", "theory"):
            assert "eta_J~2.5" in wildcards, (rule, wildcards)
        elif rule in ("compare", "figure_data", "figure"):
            assert wildcards == "experiment=dynamics", (rule, wildcards)
        else:  # the claims that read dynamics' runs are evaluated again
            assert rule in ("all", "claims"), rule
    assert {r for r, _ in jobs} >= {"tasks", "simulate", "theory", "compare", "figure_data"}


def _variability(key, value):
    def edit(config):
        config["experiments"]["variability"]["figure"][key] = value

    return edit


def _finite_size_window(config):
    config["experiments"]["finite_size"]["compare"] = {"alpha_end": 3.0}


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit,rules,experiment",
    [
        # paint options: the figure's data stays, only the painting reruns
        (_variability("title", "a new title"), {"figure"}, "variability"),
        (_variability("xscale", "linear"), {"figure"}, "variability"),
        (_variability("thresholds", [0.01]), {"figure"}, "variability"),
        # a data option recomputes the figure's data, the comparison stays
        (_variability("floor_window", 0.3), {"figure_data", "figure"}, "variability"),
        # the compare window (an experiment key, no more a figure option)
        (_finite_size_window, {"compare", "figure_data", "figure"}, "finite_size"),
    ],
)
def test_an_option_reruns_only_the_stages_it_changes(
    finished_workflow, tmp_path, edit, rules, experiment
):
    out = snakemake(finished_workflow, "--dry-run", config=_edited_config(tmp_path, edit))
    jobs = _planned_jobs(out.stdout) - {("all", "")}
    assert jobs == {(rule, f"experiment={experiment}") for rule in rules}, out.stdout


@pytest.mark.slow
def test_the_claims_table_has_a_row_per_claim_with_numbers(finished_workflow):
    results = finished_workflow / "results"
    claims = yaml.safe_load(TEST_CONFIG.read_text())["claims"]
    table = open_dataset(results / "claims.nc", stage="claims")
    assert list(table["claim"].values) == list(claims)
    assert all(runs for runs in table["runs"].values)  # every statistic names its sources
    text = (results / "claims.md").read_text()
    for name in claims:
        assert sum(line.startswith(f"| {name} |") for line in text.splitlines()) >= 1, name


@pytest.mark.slow
def test_a_claims_threshold_reruns_only_the_claims_rule(finished_workflow, tmp_path):
    def edit(config):
        config["claims"]["reaches_level"]["test"]["level"] = 0.2

    out = snakemake(finished_workflow, "--dry-run", config=_edited_config(tmp_path, edit))
    assert _planned_jobs(out.stdout) - {("all", "")} == {("claims", "")}, out.stdout


@pytest.mark.slow
def test_report_contains_every_figure(finished_workflow):
    snakemake(finished_workflow, "--report", "report.html")
    html = (finished_workflow / "report.html").read_text(errors="replace")
    for name in yaml.safe_load(TEST_CONFIG.read_text())["experiments"]:
        assert f"{name}.png" in html
    assert "Task variability: eps" in html  # the caption of its kind (figure_kinds)


@pytest.mark.slow
def test_another_config_replaces_the_default_one(tmp_path):
    """From the repository root a --configfile must not merge into config/config.yaml."""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", str(TEST_CONFIG), "-n", "--forceall"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    figures = {w.split("=", 1)[1] for r, w in _planned_jobs(out.stdout) if r == "figure"}
    assert figures == set(yaml.safe_load(TEST_CONFIG.read_text())["experiments"])
