"""A pointwise (1x1) linear layer for feature maps in either layout, with one weight shape for both."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PointwiseLinear"]


class PointwiseLinear(nn.Linear):
    """``nn.Linear`` applied at every position of a feature map.

    The weight is always (out, in), as in ``nn.Linear``, so checkpoints load whichever layout the model
    runs in: (B, H, W, C) maps (``channels_last=True``) go through ``F.linear``, (B, C, H, W) maps through
    a 1x1 ``F.conv2d`` on a view of the same weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, channels_last: bool = True,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return F.linear(x, self.weight, self.bias)
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", channels_last={self.channels_last}"
