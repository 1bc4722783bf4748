"""Mask R-CNN with a VMamba backbone trains on generated shapes through tools/train.py and learns."""

import pytest

from smoke import DET_SMOKE, evaluate, last_metric, schedule_options
from conftest import run_tool

ITERS = 120
# untrained: ~0 bbox mAP; thresholds and measured values in notes/mm.md
MIN_TRAINED_BBOX_MAP = 0.10
MAX_UNTRAINED_BBOX_MAP = 0.03


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    from vssm.mm.smoke_data import make_coco_instances

    root = tmp_path_factory.mktemp("coco")
    make_coco_instances(str(root), n_train=48, n_val=12, size=256)
    return {"VSSM_SMOKE_COCO": str(root)}


def test_mask_rcnn_vmamba_learns_and_test_tool_reproduces_the_logged_metric(coco, tmp_path):
    untrained = evaluate(DET_SMOKE, "none", tmp_path / "untrained", coco)
    run_tool("tools/train.py", str(DET_SMOKE), "--work-dir", str(tmp_path / "train"), *schedule_options(ITERS),
             env=coco)
    logged = last_metric(tmp_path / "train", "coco/bbox_mAP")
    tested = evaluate(DET_SMOKE, tmp_path / "train" / f"iter_{ITERS}.pth", tmp_path / "test", coco)
    print(f"bbox mAP untrained {untrained['coco/bbox_mAP']:.3f}, after {ITERS} iterations {logged:.3f}; "
          f"segm mAP {tested['coco/segm_mAP']:.3f}")
    assert untrained["coco/bbox_mAP"] <= MAX_UNTRAINED_BBOX_MAP
    assert logged >= MIN_TRAINED_BBOX_MAP
    assert tested["coco/bbox_mAP"] == pytest.approx(logged, abs=1e-3)
    assert tested["coco/segm_mAP"] > untrained["coco/segm_mAP"]
