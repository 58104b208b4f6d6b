"""Recovery of the Snakemake workflow (issue 16): a deleted or corrupt intermediate is made
again by running the same command, nothing good is deleted, and the outputs are the same;
config files read by the Snakefile name a repeated key or a syntax error with file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from tsmeta.io import open_dataset

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def _small_config(path: Path) -> Path:
    """config/test.yaml with only its dynamics experiment and one run (seconds per job)."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    dynamics = config["experiments"]["dynamics"]
    dynamics.pop("sweep", None)
    config["experiments"] = {"dynamics": dynamics}
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args, config: Path | None = None):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", *args]  # fmt: skip
    if config is not None:
        cmd += ["--configfile", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _data(path: Path) -> xr.Dataset:
    ds = open_dataset(path)
    return ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({})


def _fingerprint(path: Path):
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.slow
def test_truncated_or_deleted_files_are_made_again_by_the_same_command(tmp_path):
    config = _small_config(tmp_path / "small.yaml")
    work = tmp_path / "work"
    first = snakemake(work, config=config)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = (work / "results" / "runs").iterdir()
    files = {name: run / f"{name}.nc" for name in ("tasks", "sim", "theory")}
    files["compare"] = work / "results" / "experiments" / "dynamics" / "compare.nc"
    original = {name: _data(path) for name, path in files.items()}

    # a deleted intermediate: a plain rerun makes it (and what depends on it), nothing else
    files["theory"].unlink()
    sim_before = _fingerprint(files["sim"])
    again = snakemake(work, config=config)
    assert again.returncode == 0, again.stderr[-3000:]
    xr.testing.assert_identical(_data(files["theory"]), original["theory"])
    assert _fingerprint(files["sim"]) == sim_before  # the good simulation was left alone

    # a truncated intermediate: the job that reads it fails, names it, sets it aside ...
    data = files["sim"].read_bytes()
    files["sim"].write_bytes(data[: len(data) // 2])
    files["compare"].unlink()  # so that a job reads the truncated file
    theory_before = _fingerprint(files["theory"])
    failed = snakemake(work, config=config)
    message = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{files['sim'].relative_to(work)}: not a readable netCDF file" in message
    assert "moved aside to" in message and "snakemake --cores all" in message
    assert files["sim"].with_name("sim.nc.unreadable").exists() and not files["sim"].exists()
    # ... and the same command makes it again, with the same data
    fixed = snakemake(work, config=config)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    for name in ("sim", "compare"):
        xr.testing.assert_identical(_data(files[name]), original[name])
    assert _fingerprint(files["theory"]) == theory_before

    # a truncated tasks file read by the simulation: made again, then everything of its run
    data = files["tasks"].read_bytes()
    files["tasks"].write_bytes(data[: len(data) // 2])
    files["sim"].unlink()
    failed = snakemake(work, config=config)
    message = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "tasks.nc: not a readable netCDF file" in message
    fixed = snakemake(work, config=config)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    for name, path in files.items():
        xr.testing.assert_identical(_data(path), original[name])
    assert "Nothing to be done" in snakemake(work, "-n", config=config).stdout


@pytest.mark.slow
def test_config_files_are_read_with_the_projects_loader(tmp_path):
    text = _small_config(tmp_path / "small.yaml").read_text()
    assert "divergence_threshold" not in text
    exponent = tmp_path / "exponent.yaml"  # YAML 1.1 would read 1e6 as a string
    exponent.write_text(text.replace("simulation:\n", "simulation:\n  divergence_threshold: 1e6\n"))
    out = snakemake(tmp_path / "a", "-n", config=exponent)
    assert out.returncode == 0, out.stderr[-3000:]

    repeated = tmp_path / "repeated.yaml"
    repeated.write_text(text.replace("results: results\n", "results: results\nresults: other\n"))
    line = repeated.read_text().splitlines().index("results: other") + 1
    out = snakemake(tmp_path / "b", "-n", config=repeated)
    message = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"{repeated}, line {line}" in message and "duplicate key 'results'" in message

    # the default config (no --configfile) is read by the Snakefile: a syntax error is named
    work = tmp_path / "c"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text("results: r\nexperiments:\n  a: [1,\n  b: 2\n")
    out = snakemake(work, "-n")
    message = out.stdout + out.stderr
    assert out.returncode != 0
    assert "config/config.yaml, line 5" in message and "not valid YAML" in message
