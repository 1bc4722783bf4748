"""Convolutional feed-forward network (MSVMamba's ConvFFN), for feature maps in either layout.

``fc2(act(h + dwconv3x3(h)))`` with ``h = fc1(x)``: a pointwise MLP whose hidden map also passes through a
3x3 depthwise conv (added as a residual), which gives the FFN a little spatial mixing. The constructor is
``Mlp``'s, so it plugs into ``VSSBlock(mlp_layer=ConvFFN)``.
"""

from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from .linear import PointwiseLinear

__all__ = ["ConvFFN"]


class ConvFFN(nn.Module):
    """fc1 -> dropout -> (+ 3x3 depthwise conv) -> act -> fc2 -> dropout.

    ``fc1`` / ``fc2`` hold (out, in) weights as in ``Mlp`` whatever the layout (``channels_last``).
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None, out_features: Optional[int] = None,
                 act_layer: Type[nn.Module] = nn.GELU, drop: float = 0.0, bias: bool = True, *,
                 channels_last: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.channels_last = channels_last
        self.fc1 = PointwiseLinear(in_features, hidden_features, bias, channels_last=channels_last, **dd)
        self.drop1 = nn.Dropout(drop)
        self.dw_conv = nn.Conv2d(hidden_features, hidden_features, 3, padding=1, groups=hidden_features,
                                 bias=bias, **dd)
        self.act = act_layer()
        self.fc2 = PointwiseLinear(hidden_features, out_features, bias, channels_last=channels_last, **dd)
        self.drop2 = nn.Dropout(drop)

    def _dw_conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return self.dw_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.dw_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.fc1(x))
        x = self.act(x + self._dw_conv(x))
        return self.drop2(self.fc2(x))
