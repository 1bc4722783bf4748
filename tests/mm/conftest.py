"""MMDetection / MMSegmentation tests: marked ``mm``, skipped (with the reason) only when the toolkits are absent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "mm: MMDetection / MMSegmentation integration (needs the mm extra)")


def _missing_toolkits():
    import importlib.util

    missing = []
    for module in ("mmengine", "mmcv", "mmdet", "mmseg"):
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    return missing


def pytest_collection_modifyitems(config, items):
    missing = _missing_toolkits()
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.mm)
            if missing and not getattr(item.module, "RUNS_WITHOUT_MM", False):
                item.add_marker(pytest.mark.skip(
                    reason=f"mm extra not installed ({', '.join(missing)}): bash tools/install_mm.sh .venv"))


def run_tool(*args, env=None, timeout=600, cwd=ROOT):
    """Run a tools/ script single-threaded in a fresh process; returns the CompletedProcess (raises on failure)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc
