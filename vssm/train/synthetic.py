"""A generated, learnable ImageFolder (for tests, smoke runs and throughput measurements without ImageNet)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def write_synthetic_image_folder(root: str, classes: int = 10, per_class: int = 8, val_per_class: int = 2,
                                 size: int = 32, seed: int = 0, ext: str = "png") -> str:
    """ROOT/{train,val}/class_<c>/<i>.<ext>: noise images whose class sets one brightened colour channel and a
    class-specific horizontal stripe, so a classifier can learn them and the loss falls."""
    rng = np.random.default_rng(seed)
    stripe = max(size // max(classes, 1), 1)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = os.path.join(root, split, f"class_{c}")
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
                img[:, :, c % 3] += 120
                row = (c * stripe) % size
                img[row:row + stripe, :, :] = 255
                Image.fromarray(img).save(os.path.join(folder, f"{i}.{ext}"))
    return root
