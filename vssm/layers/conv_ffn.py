"""Convolutional feed-forward network (MSVMamba's ConvFFN) on channels-first maps.

``fc2(act(h + dwconv3x3(h)))`` with ``h = fc1(x)``: a pointwise MLP whose hidden map also passes through a
3x3 depthwise conv (added as a residual), which gives the FFN a little spatial mixing.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["ConvFFN"]


class ConvFFN(nn.Module):
    """(B, C, H, W) -> (B, C, H, W) with a ``hidden_dim``-wide hidden map."""

    def __init__(self, dim: int, hidden_dim: int, act_layer: Callable[..., nn.Module] = nn.GELU,
                 drop: float = 0.0, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1, **dd)
        self.drop1 = nn.Dropout(drop)
        self.dw_conv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim, **dd)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1, **dd)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.fc1(x))
        x = self.act(x + self.dw_conv(x))
        return self.drop2(self.fc2(x))
