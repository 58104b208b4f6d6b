"""The workflow on a real SLURM: tests/slurm/run_slurm_test.sh, run from pytest.

The script installs Debian's slurm-wlm and munge if they are missing, starts a one-node cluster on
localhost, runs the tiny config with --workflow-profile profiles/slurm, checks SLURM's job
completion log and compares the outputs with a local run (see the script's header). Because it
installs system packages and starts daemons as root, it only runs when asked:

    TSMETA_SLURM_TEST=1 python -m pytest -m slurm tests/workflow/test_slurm.py
"""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm" / "run_slurm_test.sh"
PASS, FAIL, SKIP = 0, 1, 77
TIMEOUT_S = 1800


def skip_message(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("SKIP:")]
    return lines[-1] if lines else "SKIP: (the script gave no reason)\n" + output[-2000:]


@pytest.mark.slurm
@pytest.mark.slow
def test_workflow_on_a_real_slurm():
    if os.environ.get("TSMETA_SLURM_TEST") != "1":
        pytest.skip(
            "installs slurm-wlm/munge and starts SLURM daemons as root; enable with "
            "TSMETA_SLURM_TEST=1 python -m pytest -m slurm tests/workflow/test_slurm.py"
        )
    with subprocess.Popen(
        ["bash", str(SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as script:
        try:
            output, _ = script.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            script.terminate()  # the script's trap stops its jobs and the daemons it started
            output, _ = script.communicate(timeout=120)
            pytest.fail(f"{SCRIPT.name} took more than {TIMEOUT_S} s:\n{output[-8000:]}")
    print(output)  # shown by pytest -s, and on failure
    if script.returncode == SKIP:
        pytest.skip(skip_message(output))
    assert script.returncode == PASS, (
        f"{SCRIPT.name} exited {script.returncode} (0 pass, 1 fail, 77 skip):\n{output[-8000:]}"
    )
    assert "SUMMARY: PASS" in output
