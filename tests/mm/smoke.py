"""Helpers for the smoke training tests: generated data, tool runs, reading MMEngine's logged scalars."""

import json
from pathlib import Path

from mm_helpers import ROOT, run_tool

DET_SMOKE = ROOT / "configs/mmdet/smoke/mask-rcnn_vmamba-smoke.py"
SEG_SMOKE = ROOT / "configs/mmseg/smoke/upernet_vmamba-smoke.py"


def schedule_options(max_iters, ckpt_interval=None, val_interval=None, log_interval=10):
    return ["--cfg-options", f"train_cfg.max_iters={max_iters}",
            f"train_cfg.val_interval={val_interval or max_iters}",
            f"default_hooks.checkpoint.interval={ckpt_interval or max_iters}",
            f"default_hooks.logger.interval={log_interval}"]


def logged_scalars(work_dir):
    """All records of ``<work_dir>/<timestamp>/vis_data/scalars.json`` (one run per work dir)."""
    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    assert files, f"no scalars.json under {work_dir}"
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def last_metric(work_dir, key):
    values = [r[key] for r in logged_scalars(work_dir) if key in r]
    assert values, f"{key} never logged in {work_dir}"
    return values[-1]


def evaluate(config, checkpoint, work_dir, env):
    out = Path(work_dir) / "metrics.json"
    run_tool("tools/test.py", str(config), str(checkpoint), "--work-dir", str(work_dir), "--metrics-out", str(out),
             env=env)
    return json.loads(out.read_text())
