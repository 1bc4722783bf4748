"""Small generated data sets for smoke training: COCO-format instances and an ADE-layout segmentation set.

Images are noisy backgrounds with a few filled shapes (rectangle, ellipse, triangle = the three classes);
instance masks are the shapes' polygons, segmentation labels paint the same shapes. Deterministic for a seed.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

CLASSES = ("rectangle", "ellipse", "triangle")
PALETTE = [(220, 20, 60), (0, 128, 255), (50, 205, 50)]


def _polygon(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Vertices (N, 2) of one shape somewhere inside a size x size image."""
    w, h = rng.uniform(0.18, 0.4, 2) * size
    cx, cy = rng.uniform(0.5 * w, size - 0.5 * w), rng.uniform(0.5 * h, size - 0.5 * h)
    if kind == 0:
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    elif kind == 1:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts = np.stack([w / 2 * np.cos(t), h / 2 * np.sin(t)], 1)
    else:
        pts = [(0, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return np.asarray(pts, np.float64) + (cx, cy)


def _draw_image(rng, size, max_shapes):
    img = rng.normal(110, 25, (size, size, 3)).clip(0, 255).astype(np.uint8)
    shapes = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(0, len(CLASSES)))
        poly = _polygon(kind, rng, size)
        colour = np.array(PALETTE[kind]) + rng.integers(-30, 31, 3)
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], tuple(int(c) for c in colour.clip(0, 255)))
        shapes.append((kind, poly))
    return img, shapes


def make_coco_instances(root: str, n_train: int = 64, n_val: int = 16, size: int = 256, max_shapes: int = 3,
                        seed: int = 0) -> str:
    """Write ``root/{train,val}/*.jpg`` and ``root/annotations/instances_{train,val}.json``; returns root."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(n):
            img, shapes = _draw_image(rng, size, max_shapes)
            name = f"{split}_{i:05d}.jpg"
            cv2.imwrite(os.path.join(root, split, name), img)
            images.append(dict(id=i + 1, file_name=name, width=size, height=size))
            # later shapes are drawn over earlier ones: keep each instance's visible part as its mask
            masks = []
            for kind, poly in shapes:
                m = np.zeros((size, size), np.uint8)
                cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
                masks = [prev & (1 - m) for prev in masks]
                masks.append(m)
            for (kind, _), m in zip(shapes, masks):
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                segs = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
                if not segs or m.sum() < 16:
                    continue
                ys, xs = np.nonzero(m)
                x0, y0 = float(xs.min()), float(ys.min())
                bw, bh = float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=kind + 1,
                                        segmentation=segs, area=float(m.sum()), bbox=[x0, y0, bw, bh], iscrowd=0))
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=k + 1, name=c) for k, c in enumerate(CLASSES)])
        with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump(coco, f)
    return root


def make_ade_segmentation(root: str, n_train: int = 64, n_val: int = 16, size: int = 256, max_shapes: int = 3,
                          seed: int = 0) -> str:
    """Write ``root/images/{training,validation}/*.jpg`` and ``root/annotations/.../*.png`` (ADE20K layout).

    Label values: 0 = background, k = CLASSES[k - 1] (so ``reduce_zero_label=False`` with 4 classes).
    """
    rng = np.random.default_rng(seed + 1)
    for split, n in (("training", n_train), ("validation", n_val)):
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.makedirs(os.path.join(root, "annotations", split), exist_ok=True)
        for i in range(n):
            img, shapes = _draw_image(rng, size, max_shapes)
            label = np.zeros((size, size), np.uint8)
            for kind, poly in shapes:
                cv2.fillPoly(label, [np.round(poly).astype(np.int32)], kind + 1)
            name = f"ADE_{split}_{i:05d}"
            cv2.imwrite(os.path.join(root, "images", split, name + ".jpg"), img)
            cv2.imwrite(os.path.join(root, "annotations", split, name + ".png"), label)
    return root
