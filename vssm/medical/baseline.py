"""The intensity-only baseline: two multi-Otsu thresholds of the T1 inside the brain mask.

On a T1 image CSF is dark, grey matter mid-grey and white matter bright, so two thresholds already separate
the three tissue classes of the clean template well; a bias field and noise break that, which is where a
trained network has to earn its keep. The thresholds maximise the between-class variance of a 256-bin
histogram over every pair of bin edges (exhaustive, as in scikit-image's ``threshold_multiotsu`` with
``classes=3``), so no extra dependency is needed.
"""

from __future__ import annotations

import torch

__all__ = ["multi_otsu_thresholds", "otsu_segmentation"]


def multi_otsu_thresholds(values: torch.Tensor, bins: int = 256) -> tuple[float, float]:
    """Two thresholds ``t1 < t2`` splitting ``values`` into three classes with the largest between-class
    variance."""
    values = values.detach().flatten().double()
    if values.numel() < 3:
        raise ValueError(f"multi-Otsu needs at least 3 values, got {values.numel()}")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise ValueError("multi-Otsu needs values that are not all equal")
    hist = torch.histc(values, bins=bins, min=lo, max=hi)
    centers = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    prob = hist / hist.sum()
    w = torch.cumsum(prob, 0)                    # weight of bins 0..i
    m = torch.cumsum(prob * centers, 0)          # first moment of bins 0..i
    total_m = m[-1]
    # Class 0 = bins [0, i], class 1 = (i, j], class 2 = (j, bins-1] for every i < j.
    w0, m0 = w[:, None], m[:, None]
    w1, m1 = w[None, :] - w[:, None], m[None, :] - m[:, None]
    w2, m2 = 1.0 - w[None, :], total_m - m[None, :]
    eps = 1e-12
    score = m0 ** 2 / (w0 + eps) + m1 ** 2 / (w1 + eps) + m2 ** 2 / (w2 + eps)
    valid = torch.triu(torch.ones(bins, bins, dtype=torch.bool), diagonal=1)
    valid &= (w0 > eps) & (w1 > eps) & (w2 > eps)
    score = torch.where(valid, score, torch.full_like(score, -1.0))
    flat = int(score.argmax())
    i, j = divmod(flat, bins)
    edge = lambda k: lo + (k + 1) * (hi - lo) / bins  # upper edge of bin k
    return edge(i), edge(j)


def otsu_segmentation(image: torch.Tensor, mask: torch.Tensor,
                      thresholds: tuple[float, float] | None = None) -> torch.Tensor:
    """Labels 0/1/2 (background+CSF / grey / white matter) from two thresholds of ``image`` inside ``mask``;
    outside the mask is 0. Thresholds default to multi-Otsu on the masked voxels."""
    if image.shape != mask.shape:
        raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} must have the same shape")
    mask = mask.bool()
    if not bool(mask.any()):
        raise ValueError("the brain mask is empty")
    t1, t2 = thresholds if thresholds is not None else multi_otsu_thresholds(image[mask])
    label = torch.zeros(image.shape, dtype=torch.long)
    label[mask & (image > t1)] = 1
    label[mask & (image > t2)] = 2
    return label
