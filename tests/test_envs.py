"""envs/tsmeta.yaml (conda, for `snakemake --sdm conda`) stays in step with pyproject.toml.

Every [project.dependencies] entry must have its conda package with the same version bounds,
and the environment must list nothing else but python (and optionally pip). The conda channels
are not reachable here, so the environment itself is not built; this checks the file only.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
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


def pyproject_requirements(text: str) -> dict[str, SpecifierSet]:
    deps = tomllib.loads(text)["project"]["dependencies"]
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, deps)}


def conda_packages(text: str) -> dict[str, str]:
    """Conda package name (lower case) -> version spec ('' when none) of an environment file."""
    env = yaml.safe_load(text)
    packages = {}
    for entry in env.get("dependencies") or []:
        if isinstance(entry, dict):  # a `pip:` section: not allowed to hide dependencies there
            raise ValueError(f"unexpected section {sorted(entry)}: list conda packages only")
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
