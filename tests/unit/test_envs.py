"""envs/tsmeta.yaml (conda, for `snakemake --sdm conda`) stays in step with pyproject.toml, and
installs the package itself.

Every [project.dependencies] entry must have its conda package with the same version bounds,
the environment must list nothing else but python and pip, and its pip section must hold the
project itself and nothing else. The conda channels are not reachable here, so conda is not
run; instead a job runs in a fresh virtual environment that holds only what the file names
(the conda packages by their PyPI names, then the pip section as conda hands it to pip).
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "envs" / "tsmeta.yaml"

# PyPI name (canonical) -> conda-forge/bioconda package; the rest are named alike
CONDA_NAME = {
    "torch": "pytorch",
    "netcdf4": "netcdf4",
    "snakemake": "snakemake-minimal",
    "matplotlib": "matplotlib-base",
    "seaborn": "seaborn-base",
}
ALLOWED_EXTRA = {"python", "pip"}
CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")
PROJECT_PIP_LINE = "-e ${TSMETA_SOURCE}"  # the Snakefile exports TSMETA_SOURCE


def pip_section(text: str) -> list[str]:
    """The `pip:` entries of an environment file (empty if none)."""
    for entry in yaml.safe_load(text).get("dependencies") or []:
        if isinstance(entry, dict):
            return [str(line) for line in entry.get("pip") or []]
    return []


def pyproject_requirements(text: str) -> dict[str, SpecifierSet]:
    deps = tomllib.loads(text)["project"]["dependencies"]
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, deps)}


def conda_packages(text: str) -> dict[str, str]:
    """Conda package name (lower case) -> version spec ('' when none) of an environment file."""
    env = yaml.safe_load(text)
    packages = {}
    for entry in env.get("dependencies") or []:
        if isinstance(entry, dict):  # the `pip:` section may install the project, nothing else
            if set(entry) != {"pip"} or [str(x) for x in entry["pip"]] != [PROJECT_PIP_LINE]:
                raise ValueError(
                    f"unexpected section {entry}: list conda packages only; the pip section "
                    f"holds the project itself ({PROJECT_PIP_LINE!r}) and nothing else"
                )
            continue
        if "::" in str(entry):
            raise ValueError(f"{ENV_FILE.name}: {entry!r}: give channels in `channels:`")
        match = CONDA_SPEC.match(str(entry).strip())
        if not match:
            raise ValueError(f"{ENV_FILE.name}: cannot read the entry {entry!r}")
        name, spec = match.group(1).lower(), match.group(2).replace(" ", "")
        packages[name] = spec
    return packages


def conda_specifier(spec: str) -> SpecifierSet:
    """A conda version spec as used in the file (`>=1.6`, `>=9,<10`) as a PEP 440 SpecifierSet."""
    if spec and spec[0].isdigit():  # conda `=3.11` / bare `3.11` mean 3.11.*
        spec = "==" + spec.lstrip("=") + ".*"
    elif spec.startswith("=") and not spec.startswith("=="):
        spec = "==" + spec.lstrip("=") + ".*"
    return SpecifierSet(spec)


def mismatches(pyproject_text: str, env_text: str) -> list[str]:
    """Every way in which the environment file and pyproject.toml disagree (empty: in step)."""
    required = pyproject_requirements(pyproject_text)
    listed = conda_packages(env_text)
    problems = []
    for name, specifier in sorted(required.items()):
        conda = CONDA_NAME.get(name, name)
        if conda not in listed:
            problems.append(f"{name}: no conda package {conda!r} in {ENV_FILE.name}")
        elif conda_specifier(listed[conda]) != specifier:
            problems.append(
                f"{name}: pyproject.toml asks {str(specifier) or 'any version'}, "
                f"{ENV_FILE.name} has {conda}{listed[conda] or ' (no bound)'}"
            )
    expected = {CONDA_NAME.get(name, name) for name in required}
    for conda in sorted(set(listed) - expected - ALLOWED_EXTRA):
        problems.append(f"{conda}: in {ENV_FILE.name} but not a dependency in pyproject.toml")
    if "python" not in listed:
        problems.append(f"python: not pinned in {ENV_FILE.name}")
    return problems


def test_env_file_matches_pyproject():
    problems = mismatches((ROOT / "pyproject.toml").read_text(), ENV_FILE.read_text())
    assert not problems, "envs/tsmeta.yaml and pyproject.toml disagree:\n" + "\n".join(problems)


def test_env_python_satisfies_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requires = SpecifierSet(project["requires-python"])
    python = conda_packages(ENV_FILE.read_text())["python"]
    assert Version(python.lstrip("=<>!~")) in requires, f"python{python} outside {requires}"


def test_env_channels_are_conda_forge_first():
    channels = yaml.safe_load(ENV_FILE.read_text())["channels"]
    assert channels[0] == "conda-forge"
    assert "defaults" not in channels


def test_rules_point_at_the_env_file():
    rules = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    for rule_file in rules:
        text = rule_file.read_text()
        for target in re.findall(r"conda:\s*\n?\s*[\"']([^\"']+)[\"']", text):
            assert (rule_file.parent / target).resolve() == ENV_FILE, f"{rule_file}: {target}"


PYPROJECT = """
[project]
dependencies = ["torch>=2.4", "netCDF4>=1.6", "numpy>=1.26"]
"""
GOOD_ENV = """
channels: [conda-forge]
dependencies: [python=3.11, pytorch>=2.4, netcdf4>=1.6, numpy>=1.26]
"""


def test_in_step_passes():
    assert mismatches(PYPROJECT, GOOD_ENV) == []


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        ("python=3.11, pytorch>=2.4, numpy>=1.26", "netcdf4: no conda package"),
        ("python=3.11, torch>=2.4, netcdf4>=1.6, numpy>=1.26", "torch: no conda package 'pytorch'"),
        (
            "python=3.11, pytorch>=2.4, netcdf4>=1.6, numpy>=1.20",
            "numpy: pyproject.toml asks >=1.26",
        ),
        ("python=3.11, pytorch, netcdf4>=1.6, numpy>=1.26", "torch: pyproject.toml asks >=2.4"),
        ("python=3.11, pytorch>=2.4, netcdf4>=1.6, numpy>=1.26, requests", "requests: in tsmeta"),
        ("pytorch>=2.4, netcdf4>=1.6, numpy>=1.26", "python: not pinned"),
    ],
)
def test_mismatch_is_caught(deps, message):
    problems = mismatches(PYPROJECT, f"dependencies: [{deps}]")
    assert any(message in p for p in problems), problems


def test_pip_section_is_rejected():
    env = "dependencies:\n  - python=3.11\n  - numpy>=1.26\n  - pip:\n    - torch>=2.4\n"
    with pytest.raises(ValueError, match="pip"):
        mismatches(PYPROJECT, env)


def test_env_file_installs_the_package():
    assert pip_section(ENV_FILE.read_text()) == [PROJECT_PIP_LINE]
    assert "TSMETA_SOURCE" in (ROOT / "Snakefile").read_text()


PYPI_NAME = {conda: pypi for pypi, conda in CONDA_NAME.items()} | {"netcdf4": "netCDF4"}


@pytest.mark.slow
def test_a_job_runs_in_a_fresh_environment_with_only_what_the_env_file_names(tmp_path):
    """The tasks, simulate and theory jobs of one run, in a virtual environment that has the
    env file's packages (PyPI names; torch pinned to this machine's build) and its pip section
    as conda runs it (`pip install -r`, ${TSMETA_SOURCE} expanded by pip)."""
    import torch

    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    listed = conda_packages(ENV_FILE.read_text())
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]  # the build on this disk
    for name, spec in listed.items():
        if name in ALLOWED_EXTRA or name == "pytorch":
            continue
        requirements.append(PYPI_NAME.get(name, name) + spec)
    pip = [python, "-m", "pip", "install", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(pip + requirements, check=True, env=env, timeout=900)
    section = tmp_path / "condaenv.requirements.txt"
    section.write_text("\n".join(pip_section(ENV_FILE.read_text())) + "\n")
    env["TSMETA_SOURCE"] = str(ROOT)
    subprocess.run(pip + ["-r", str(section)], check=True, env=env, cwd=tmp_path, timeout=900)
    from tsmeta import config as tsconfig

    plan = tsconfig.expand(tsconfig.load(ROOT / "config" / "test.yaml"))
    run = plan.experiments["dynamics"].runs[0]
    targets = [f"results/runs/{run}/{name}.nc" for name in ("sim", "theory")]
    cmd = [python, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile",
           str(ROOT / "config" / "test.yaml"), "--directory", str(tmp_path / "work"),
           "--cores", "1", *targets]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    for target in targets:
        assert (tmp_path / "work" / target).stat().st_size > 1000
