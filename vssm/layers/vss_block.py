"""The VSS block: a pre-norm residual SS2D mixer, then (optionally) a pre-norm residual MLP."""

from typing import Any, Dict, Optional, Type

import torch
from torch import nn
from timm.layers import DropPath

from .mlp import Mlp
from .norm import channel_norm
from .ss2d import SS2D

__all__ = ["VSSBlock"]


class VSSBlock(nn.Module):
    """``x + drop_path(mixer(norm1(x)))``, then ``x + drop_path(mlp(norm2(x)))`` if ``mlp_ratio > 0``.

    Args:
        dim: width.  drop_path: stochastic depth rate of both branches.
        mlp_ratio: MLP hidden width / dim; 0 for no MLP branch (VMamba v0, VM-UNet).
        mlp_act_layer, mlp_drop: the MLP's activation and dropout.
        mlp_layer: the MLP class (``Mlp``, or one with its constructor, e.g. ``ConvFFN``).
        mixer_layer: the token mixer class (SS2D, or a family's variant with the same constructor).
        mixer_kwargs: options of the mixer (routes, d_state, ssm_ratio, gate, out_norm, ... see ``SS2D``).
        channels_last: layout of the block's input and output, (B, H, W, C) if True else (B, C, H, W).
    """

    def __init__(self, dim: int, *, drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 mlp_act_layer: Type[nn.Module] = nn.GELU, mlp_drop: float = 0.0,
                 mlp_layer: Type[nn.Module] = Mlp,
                 mixer_layer: Type[nn.Module] = SS2D, mixer_kwargs: Optional[Dict[str, Any]] = None,
                 norm_eps: float = 1e-5, channels_last: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.norm1 = channel_norm(dim, channels_last=channels_last, eps=norm_eps, **dd)
        self.mixer = mixer_layer(dim, channels_last=channels_last, norm_eps=norm_eps, **(mixer_kwargs or {}), **dd)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = channel_norm(dim, channels_last=channels_last, eps=norm_eps, **dd)
            self.mlp = mlp_layer(dim, int(dim * mlp_ratio), act_layer=mlp_act_layer, drop=mlp_drop,
                           channels_last=channels_last, **dd)
            self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        else:
            self.norm2 = self.mlp = self.drop_path2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.mixer(self.norm1(x)))
        if self.mlp is not None:
            x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x
