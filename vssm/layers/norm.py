"""Layer norms over the channel axis of a feature map, in either layout.

Both classes come from timm; this only picks the one matching the layout, with PyTorch's default eps
(1e-5, what the released VMamba / MSVMamba / EfficientVMamba weights were trained with; timm's own
default is 1e-6), and turns on timm's "fast norm" behaviour for them: under autocast the norm runs in the
autocast dtype (statistics still accumulate in fp32 inside PyTorch's kernel) instead of being cast up to
fp32 and back. Outside autocast nothing changes. On an H100, fp32 norms were a third of VMamba-T's bf16
inference time (they read and write twice the bytes, plus a cast for the next projection).
"""

from torch import nn
from timm.layers import LayerNorm, LayerNorm2d

__all__ = ["LayerNorm", "LayerNorm2d", "channel_norm"]


def channel_norm(num_channels: int, *, channels_last: bool, eps: float = 1e-5, autocast_dtype: bool = True,
                 device=None, dtype=None) -> nn.Module:
    """LayerNorm over channels: of (B, H, W, C) maps if ``channels_last``, else of (B, C, H, W) maps.

    Both have the parameters ``weight`` and ``bias`` of shape (C,), so a state dict loads into either.
    ``autocast_dtype=False`` keeps PyTorch's autocast policy (the norm in fp32).
    """
    cls = LayerNorm if channels_last else LayerNorm2d
    norm = cls(num_channels, eps=eps, device=device, dtype=dtype)
    norm._fast_norm = bool(autocast_dtype)
    return norm
