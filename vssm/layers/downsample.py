"""Stride-2 downsampling between stages, for feature maps in either layout.

``PatchMerging`` is VMamba's "v1" (Swin's patch merging), ``ConvDownsample`` with ``kernel_size=2`` its
"v2" and with ``kernel_size=3`` its "v3".
"""

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import register_notrace_function

from .linear import PointwiseLinear
from .norm import channel_norm

__all__ = ["PatchMerging", "ConvDownsample"]


@register_notrace_function  # shape-dependent branch: a leaf for torch.fx
def pad_to_even(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Zero-pad the bottom / right of a feature map so that both sides are even."""
    H, W = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
    if H % 2 == 0 and W % 2 == 0:
        return x
    pad = [0, 0, 0, W % 2, 0, H % 2] if channels_last else [0, W % 2, 0, H % 2]
    return F.pad(x, pad)


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood's channels, in the order (0,0), (1,0), (0,1), (1,1) (row, col),
    then LayerNorm(4C) and a bias-free linear 4C -> ``out_dim``. Odd sides are zero-padded first."""

    def __init__(self, dim: int, out_dim: int = -1, *, channels_last: bool = True, norm_eps: float = 1e-5,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        out_dim = 2 * dim if out_dim < 0 else out_dim
        self.channels_last = channels_last
        self.norm = channel_norm(4 * dim, channels_last=channels_last, eps=norm_eps, **dd)
        self.reduction = PointwiseLinear(4 * dim, out_dim, bias=False, channels_last=channels_last, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_even(x, self.channels_last)
        if self.channels_last:
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        else:
            x = torch.cat([x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]], dim=1)
        return self.reduction(self.norm(x))


class ConvDownsample(nn.Module):
    """A stride-2 conv (``kernel_size`` 2 without padding, or 3 with padding 1), then a LayerNorm."""

    def __init__(self, dim: int, out_dim: int, kernel_size: int = 3, *, channels_last: bool = True,
                 norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        if kernel_size not in (2, 3):
            raise ValueError(f"ConvDownsample kernel_size must be 2 or 3, got {kernel_size}")
        dd = dict(device=device, dtype=dtype)
        self.channels_last = channels_last
        self.conv = nn.Conv2d(dim, out_dim, kernel_size=kernel_size, stride=2, padding=(kernel_size - 1) // 2, **dd)
        self.norm = channel_norm(out_dim, channels_last=channels_last, eps=norm_eps, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return self.norm(self.conv(x))
