"""The two-layer MLP of a VSS block, for feature maps in either layout."""

from typing import Optional, Type

import torch
from torch import nn

from .linear import PointwiseLinear

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """fc1 -> act -> dropout -> fc2 -> dropout, applied at every position of a feature map.

    Parameter names (``fc1``, ``fc2``) and shapes match ``timm.layers.Mlp``; unlike it, the same weights
    run on (B, H, W, C) or (B, C, H, W) maps (``channels_last``).
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None, out_features: Optional[int] = None,
                 act_layer: Type[nn.Module] = nn.GELU, drop: float = 0.0, bias: bool = True, *,
                 channels_last: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = PointwiseLinear(in_features, hidden_features, bias, channels_last=channels_last, **dd)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = PointwiseLinear(hidden_features, out_features, bias, channels_last=channels_last, **dd)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(x))
