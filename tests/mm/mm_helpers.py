"""Helpers shared by the mm tests. A module of its own (not conftest.py): several test folders have a conftest,
and ``from conftest import ...`` resolves to whichever one was imported first in a worker."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def missing_toolkits():
    import importlib.util

    missing = []
    for module in ("mmengine", "mmcv", "mmdet", "mmseg"):
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    return missing


def run_tool(*args, env=None, timeout=600, cwd=ROOT):
    """Run a tools/ script single-threaded in a fresh process; returns the CompletedProcess (raises on failure)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc
