"""Layer norms over the channel axis of a feature map, in either layout.

Both classes come from timm; this only picks the one matching the layout, with PyTorch's default eps
(1e-5, what the released VMamba / MSVMamba / EfficientVMamba weights were trained with; timm's own
default is 1e-6).
"""

from torch import nn
from timm.layers import LayerNorm, LayerNorm2d

__all__ = ["LayerNorm", "LayerNorm2d", "channel_norm"]


def channel_norm(num_channels: int, *, channels_last: bool, eps: float = 1e-5, device=None,
                 dtype=None) -> nn.Module:
    """LayerNorm over channels: of (B, H, W, C) maps if ``channels_last``, else of (B, C, H, W) maps.

    Both have the parameters ``weight`` and ``bias`` of shape (C,), so a state dict loads into either.
    """
    cls = LayerNorm if channels_last else LayerNorm2d
    return cls(num_channels, eps=eps, device=device, dtype=dtype)
