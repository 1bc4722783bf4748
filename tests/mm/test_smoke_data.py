"""The generated smoke sets are valid COCO instances / ADE-layout label maps, deterministic per seed."""

import json

import cv2
import numpy as np


def test_coco_instances_are_consistent(tmp_path):
    from vssm.mm.smoke_data import CLASSES, make_coco_instances

    make_coco_instances(str(tmp_path / "a"), n_train=6, n_val=2, size=96, seed=3)
    make_coco_instances(str(tmp_path / "b"), n_train=6, n_val=2, size=96, seed=3)
    a = json.loads((tmp_path / "a/annotations/instances_train.json").read_text())
    assert a == json.loads((tmp_path / "b/annotations/instances_train.json").read_text())
    assert len(a["images"]) == 6 and {c["name"] for c in a["categories"]} == set(CLASSES)
    assert a["annotations"]
    for ann in a["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and 16 <= ann["area"] <= w * h
        pts = np.concatenate([np.reshape(s, (-1, 2)) for s in ann["segmentation"]])
        assert pts[:, 0].min() >= x - 1 and pts[:, 0].max() <= x + w and pts[:, 1].max() <= y + h
    assert (tmp_path / "a/val/val_00001.jpg").exists()


def test_ade_labels_paint_the_shapes(tmp_path):
    from vssm.mm.smoke_data import make_ade_segmentation

    make_ade_segmentation(str(tmp_path), n_train=4, n_val=2, size=64)
    label = cv2.imread(str(tmp_path / "annotations/training/ADE_training_00000.png"), cv2.IMREAD_UNCHANGED)
    img = cv2.imread(str(tmp_path / "images/training/ADE_training_00000.jpg"))
    assert label.shape == (64, 64) and img.shape == (64, 64, 3)
    assert set(np.unique(label)) <= {0, 1, 2, 3} and label.max() > 0
