"""The workflow on a real SLURM: tests/slurm/run_slurm_test.sh, run from pytest.

The script installs Debian's slurm-wlm and munge if they are missing, starts a one-node cluster on
localhost, runs the tiny config with --workflow-profile profiles/slurm, checks SLURM's job
completion log and compares the outputs with a local run (see the script's header). Because it
installs system packages and starts daemons as root, it only runs when asked:

    TSMETA_SLURM_TEST=1 python -m pytest -m slurm tests/test_slurm.py
"""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm" / "run_slurm_test.sh"
PASS, FAIL, SKIP = 0, 1, 77


def skip_message(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("SKIP:")]
    return lines[-1] if lines else "SKIP: (the script gave no reason)\n" + output[-2000:]


@pytest.mark.slurm
@pytest.mark.slow
def test_workflow_on_a_real_slurm():
    if os.environ.get("TSMETA_SLURM_TEST") != "1":
        pytest.skip(
            "installs slurm-wlm/munge and starts SLURM daemons as root; enable with "
            "TSMETA_SLURM_TEST=1 python -m pytest -m slurm tests/test_slurm.py"
        )
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    print(output)  # shown by pytest -s, and on failure
    if result.returncode == SKIP:
        pytest.skip(skip_message(output))
    assert result.returncode == PASS, (
        f"{SCRIPT.name} exited {result.returncode} (0 pass, 1 fail, 77 skip):\n{output[-8000:]}"
    )
    assert "SUMMARY: PASS" in output
