"""Dice per class between label maps, through MONAI's ``DiceMetric``."""

from __future__ import annotations

import torch

__all__ = ["dice_per_class"]


def dice_per_class(pred: torch.Tensor, label: torch.Tensor, num_classes: int,
                   include_background: bool = False) -> list[float]:
    """Dice of every class (background first when ``include_background``) for integer label maps of the same
    shape. A class absent from both maps scores nan."""
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    if pred.shape != label.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(label.shape)} differ in shape")
    top = int(max(pred.max(), label.max()))
    if top >= num_classes:
        raise ValueError(f"labels go up to {top} but there are only {num_classes} classes")
    # Dice ignores where voxels lie: flatten to (batch=1, channel=1, voxels).
    pred = pred.reshape(1, 1, -1).long()
    label = label.reshape(1, 1, -1).long()
    metric = DiceMetric(include_background=include_background, reduction="none", ignore_empty=True)
    scores = metric(one_hot(pred, num_classes), one_hot(label, num_classes))
    return [float(s) for s in scores[0]]
