"""Channel attention (squeeze-and-excitation) on channels-last feature maps.

One module covers the two variants the SSM families use:

- MSVMamba's SE inside the multi-scale mixer: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``, no biases.
- EfficientVMamba's channel attention ("BiAttn"): the same, but the squeeze reads ``mean_hw(LayerNorm(x))``,
  with biases and GELU; the un-normalised ``x`` is what gets scaled.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

__all__ = ["ChannelAttention"]


class ChannelAttention(nn.Module):
    """Scale every channel of a (B, H, W, C) map by a gate computed from its global average.

    Args:
        dim: channels C.
        rd_ratio: the squeeze width is ``int(dim * rd_ratio)``.
        act_layer: activation between the two linear layers.
        bias: biases of the two linear layers.
        norm_layer: if given, normalise the map (per position, over channels) before averaging it.
    """

    def __init__(self, dim: int, rd_ratio: float = 0.125, act_layer: Callable[..., nn.Module] = nn.ReLU,
                 bias: bool = True, norm_layer: Optional[Callable[..., nn.Module]] = None, device=None,
                 dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        rd = int(dim * rd_ratio)
        if rd < 1:
            raise ValueError(f"ChannelAttention squeeze width int({dim} * {rd_ratio}) must be >= 1")
        self.norm = norm_layer(dim, **dd) if norm_layer is not None else nn.Identity()
        self.fc1 = nn.Linear(dim, rd, bias=bias, **dd)
        self.act = act_layer()
        self.fc2 = nn.Linear(rd, dim, bias=bias, **dd)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.norm(x).mean(dim=(1, 2), keepdim=True)          # (B, 1, 1, C)
        return x * self.gate(self.fc2(self.act(self.fc1(squeezed))))
