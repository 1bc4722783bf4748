"""Layer norms over the channel axis of a feature map, in either layout.

Both classes come from timm; this only picks the one matching the layout, with PyTorch's default eps
(1e-5, what the released VMamba / MSVMamba / EfficientVMamba weights were trained with; timm's own
default is 1e-6); under autocast the norms run in the
autocast dtype (statistics still accumulate in fp32 inside PyTorch's kernel) instead of being cast up to
fp32 and back. Outside autocast nothing changes. On an H100, fp32 norms were a third of VMamba-T's bf16
inference time (they read and write twice the bytes, plus a cast for the next projection).
"""

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import LayerNorm, LayerNorm2d, register_notrace_function

__all__ = ["LayerNorm", "LayerNorm2d", "channel_norm"]

_AUTOCAST_DEVICES = ("cuda", "cpu", "xpu", "mps")


@register_notrace_function  # one leaf call for torch.fx (its autocast branch reads tensor properties)
def layer_norm_in_autocast_dtype(x: torch.Tensor, normalized_shape: List[int], weight: Optional[torch.Tensor],
                                 bias: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """F.layer_norm over the last axes; under autocast, in the autocast dtype rather than fp32."""
    if torch.jit.is_scripting():
        return F.layer_norm(x, normalized_shape, weight, bias, eps)
    device = x.device.type
    if device in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device):
        dt = torch.get_autocast_dtype(device)
        x = x.to(dt)
        weight = weight.to(dt) if weight is not None else None
        bias = bias.to(dt) if bias is not None else None
        with torch.autocast(device_type=device, enabled=False):
            return F.layer_norm(x, normalized_shape, weight, bias, eps)
    return F.layer_norm(x, normalized_shape, weight, bias, eps)


torch.fx.wrap("layer_norm_in_autocast_dtype")  # the same for plain torch.fx.symbolic_trace


class ChannelsLastLayerNorm(LayerNorm):
    """timm's LayerNorm over the last axis of (B, H, W, C) maps, in the autocast dtype under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_in_autocast_dtype(x, self.normalized_shape, self.weight, self.bias, self.eps)


class ChannelsFirstLayerNorm(LayerNorm2d):
    """timm's LayerNorm2d over the channels of (B, C, H, W) maps, in the autocast dtype under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = layer_norm_in_autocast_dtype(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def channel_norm(num_channels: int, *, channels_last: bool, eps: float = 1e-5, autocast_dtype: bool = True,
                 device=None, dtype=None) -> nn.Module:
    """LayerNorm over channels: of (B, H, W, C) maps if ``channels_last``, else of (B, C, H, W) maps.

    Both have the parameters ``weight`` and ``bias`` of shape (C,), so a state dict loads into either.
    ``autocast_dtype=False`` keeps PyTorch's autocast policy (the norm in fp32).
    """
    if autocast_dtype:
        cls = ChannelsLastLayerNorm if channels_last else ChannelsFirstLayerNorm
    else:
        cls = LayerNorm if channels_last else LayerNorm2d
    return cls(num_channels, eps=eps, device=device, dtype=dtype)
