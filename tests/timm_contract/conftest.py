"""timm's model tests for our families: see harness.py (how) and families.py (which models).

Run ``tools/fetch_timm_tests.sh`` first (``make test`` does); without timm's file these tests are skipped.
Full-size models only run the meta-device config / API tests; the small ``test_*`` configurations run
everything (forward, backward, features, intermediates, TorchScript, FX).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402

# timm's pytest markers (from timm's pyproject), registered so that they are not reported as unknown
TIMM_MARKERS = ("base", "cfg", "cfg_nonstd", "forward", "backward", "features", "torchscript", "fxforward",
                "fxbackward", "timeout")


def pytest_configure(config):
    for name in TIMM_MARKERS:
        config.addinivalue_line("markers", f"{name}: timm test marker")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        if HERE not in Path(str(item.fspath)).parents:
            keep.append(item)
            continue
        name = getattr(item, "originalname", item.name)
        params = getattr(getattr(item, "callspec", None), "params", {})
        model = params.get("model_name")
        ours = isinstance(model, str) and harness.is_ours(model)
        if name in harness.DESELECT or not ours or (harness.is_cfg_only(model) and name not in harness.CFG_TESTS):
            drop.append(item)
            continue
        reason = harness.skip_reason(model, name)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
