"""Stems that turn an image into the first feature map (stride 4) of a hierarchical backbone."""

from typing import Type

import torch
from torch import nn

from .norm import channel_norm

__all__ = ["PatchEmbed", "ConvStem"]


def _to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(B, C, H, W) conv output -> the model's layout (a view, no copy)."""
    return x.permute(0, 2, 3, 1) if channels_last else x


class PatchEmbed(nn.Module):
    """Non-overlapping patches: one ``patch_size`` x ``patch_size`` conv with stride ``patch_size``, then a
    LayerNorm (VMamba's "v1" patch embedding)."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 96, patch_size: int = 4, norm: bool = True, *,
                 channels_last: bool = True, norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.channels_last = channels_last
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, **dd)
        self.norm = (channel_norm(embed_dim, channels_last=channels_last, eps=norm_eps, **dd)
                     if norm else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(_to_layout(self.proj(x), self.channels_last))


class ConvStem(nn.Module):
    """Two overlapping 3x3 stride-2 convs: conv -> norm -> act -> conv -> norm (VMamba's "v2" patch
    embedding; the same stem as MambaOut's). Output stride 4; any input size (sides round up)."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 96, act_layer: Type[nn.Module] = nn.GELU,
                 norm: bool = True, *, channels_last: bool = True, norm_eps: float = 1e-5, device=None,
                 dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        mid = embed_dim // 2
        self.channels_last = channels_last
        self.conv1 = nn.Conv2d(in_chans, mid, kernel_size=3, stride=2, padding=1, **dd)
        # the mid norm is channels-first whatever the model's layout: it sits between two convs
        self.norm1 = channel_norm(mid, channels_last=False, eps=norm_eps, **dd) if norm else nn.Identity()
        self.act = act_layer()
        self.conv2 = nn.Conv2d(mid, embed_dim, kernel_size=3, stride=2, padding=1, **dd)
        self.norm2 = (channel_norm(embed_dim, channels_last=channels_last, eps=norm_eps, **dd)
                      if norm else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.conv1(x)))
        return self.norm2(_to_layout(self.conv2(x), self.channels_last))
