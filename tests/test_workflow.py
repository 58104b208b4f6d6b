"""The Snakemake workflow end to end on the tiny config, and the command line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsmeta.io import open_dataset

ROOT = Path(__file__).resolve().parents[1]
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
    assert len(runs) == 2  # random and symmetric initial states
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
