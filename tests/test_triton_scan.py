"""The Triton scan kernels on CPU under TRITON_INTERPRET=1, against the reference (cases in
``tests/triton/scan_cases.py``).

The cases run in a child pytest with the variable set from the start: triton picks the interpreter when it
decorates a function, including its own language helpers at ``import triton``, so the variable must be set
before triton is first imported, which a shared (xdist) pytest process cannot promise.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
pytestmark = pytest.mark.triton

CASES = Path(__file__).parent / "triton" / "scan_cases.py"


def test_triton_scan_cases_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    for var in ("VSSM_SCAN_BACKEND", "VSSM_SCAN_TILE", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
                "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist", str(CASES)]
    result = subprocess.run(cmd, env=env, cwd=CASES.parents[2], capture_output=True, text=True, timeout=900)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"Triton scan cases failed:\n{tail}"
    assert " passed" in tail and "skipped" not in tail.split("passed")[-1], tail
