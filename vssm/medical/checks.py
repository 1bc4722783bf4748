"""Input checks shared by the segmentation networks and the training loop: clear errors for bad input."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_image", "check_labels", "as_tuple"]


def as_tuple(value, n: int, name: str) -> tuple:
    """``value`` repeated ``n`` times if it is a scalar, else checked to have ``n`` entries."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} needs {n} entries, got {list(value)}")
        return tuple(value)
    return (value,) * n


def check_image(x: torch.Tensor, *, network: str, spatial_dims: int, in_channels: int | Sequence[int],
                multiple: int | Sequence[int], min_size: int | Sequence[int] = 1) -> None:
    """Raise a ``ValueError`` naming the problem if ``x`` is not a (batch, in_channels, *spatial) tensor of
    ``spatial_dims`` spatial axes whose sides are multiples of ``multiple`` and at least ``min_size``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{network} takes a tensor, got {type(x).__name__}")
    if x.dim() != spatial_dims + 2:
        raise ValueError(
            f"{network} was built with spatial_dims={spatial_dims} and takes (batch, channels, "
            f"{', '.join('DHW'[3 - spatial_dims:])}) tensors of rank {spatial_dims + 2}; got rank {x.dim()}, "
            f"shape {tuple(x.shape)}")
    allowed = (in_channels,) if isinstance(in_channels, int) else tuple(in_channels)
    if x.shape[1] not in allowed:
        want = allowed[0] if len(allowed) == 1 else " or ".join(str(c) for c in allowed)
        raise ValueError(f"{network} expects {want} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    spatial = tuple(x.shape[2:])
    mult = as_tuple(multiple, spatial_dims, "multiple")
    low = as_tuple(min_size, spatial_dims, "min_size")
    too_small = [(n, m) for n, m in zip(spatial, low) if n < m]
    if too_small:
        raise ValueError(
            f"{network}: the volume {spatial} is too small for the network's depth; every side must be at "
            f"least {low}")
    bad = [n for n, m in zip(spatial, mult) if n % m]
    if bad:
        raise ValueError(
            f"{network} needs spatial sides that are multiples of {mult[0] if len(set(mult)) == 1 else mult} "
            f"(its total downsampling); got {spatial}. Pad or crop the input, or use sliding-window inference "
            f"with such a roi_size")


def check_labels(label: torch.Tensor, out_channels: int) -> None:
    """Integer class labels must lie in [0, out_channels)."""
    if label.is_floating_point() and not torch.equal(label, label.round()):
        raise ValueError("labels must be integer class indices, got non-integer values")
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi >= out_channels:
        raise ValueError(
            f"labels hold classes {lo}..{hi}, but the network has out_channels={out_channels} "
            f"(classes 0..{out_channels - 1})")
