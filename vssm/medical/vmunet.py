"""VM-UNet (2-D): a VMamba v0 encoder, a mirrored decoder with patch expanding, and a final 4x expand.

Architecture as in the official VM-UNet (``models/vmunet/``): a 4x4 patch embedding, encoder stages of VSS
blocks (VMamba v0: SS2D mixer on the four ``cross2d`` routes with out-norm and gate, no MLP) with patch merging
between them, decoder stages that first expand 2x (a linear to 2x the channels, a pixel shuffle, a LayerNorm)
and add the mirrored encoder feature, then a 4x expand and a 1x1 conv to the classes. Channels-last throughout.

Published settings (both ``depths`` 2-2-2-2, ``depths_decoder`` 2-2-2-1, drop path 0.2, widths 96..768):
ISIC (1 class, 3x256x256) and Synapse (9 classes, 3x224x224); see :func:`vmunet_isic` / :func:`vmunet_synapse`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as torch_checkpoint

from vssm.kernels import cross2d
from vssm.layers.downsample import PatchMerging
from vssm.layers.patch_embed import PatchEmbed
from vssm.layers.vss_block import VSSBlock

from .checks import check_image

__all__ = ["VMUNet", "PatchExpand", "vmunet_isic", "vmunet_synapse"]


class PatchExpand(nn.Module):
    """Upsample a channels-last map by ``scale``: a bias-free linear to ``scale**2 * out_dim`` channels,
    each position's channels laid out as a ``scale x scale`` patch (row, col, channel order), then LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, scale: int = 2, norm_eps: float = 1e-5):
        super().__init__()
        self.scale, self.out_dim = scale, out_dim
        self.expand = nn.Linear(in_dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).reshape(b, h, w, s, s, self.out_dim)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, self.out_dim)
        return self.norm(x)


def _v0_blocks(dim: int, depth: int, drop_paths: Sequence[float], d_state: int) -> nn.ModuleList:
    mixer = dict(routes=cross2d(), d_state=d_state, ssm_ratio=2.0, dt_rank="auto", conv_size=3, gate=True,
                 out_norm="layernorm")
    return nn.ModuleList([VSSBlock(dim, drop_path=drop_paths[i], mlp_ratio=0.0, mixer_kwargs=mixer)
                          for i in range(depth)])


class EncoderStage(nn.Module):
    def __init__(self, dim, depth, drop_paths, d_state, downsample: bool):
        super().__init__()
        self.blocks = _v0_blocks(dim, depth, drop_paths, d_state)
        self.downsample = PatchMerging(dim, 2 * dim) if downsample else None


class DecoderStage(nn.Module):
    def __init__(self, dim, depth, drop_paths, d_state, upsample: bool):
        super().__init__()
        self.upsample = PatchExpand(2 * dim, dim, 2) if upsample else None
        self.blocks = _v0_blocks(dim, depth, drop_paths, d_state)


def _alias(name, value, alias_name, alias, default):
    if alias is None:
        return value
    if value != default and value != alias:
        raise ValueError(f"got both {name}={value!r} and its official alias {alias_name}={alias!r}")
    return alias


class VMUNet(nn.Module):
    """VM-UNet; returns logits unless ``sigmoid_single_class`` (the official forward's sigmoid for one class).

    Args (MONAI names; the official ``input_channels`` / ``num_classes`` are accepted too):
        in_channels, out_channels: input channels and classes. A 1-channel input to a 3-channel network is
            repeated to 3 channels, as the official forward does.
        depths, depths_decoder: VSS blocks per encoder / decoder stage.
        feature_size: width of the first stage (96); stage i has ``feature_size * 2**i``.
        d_state: SSM state size.  drop_path_rate: stochastic depth, linear over the encoder and reversed over
            the decoder.
        sigmoid_single_class: apply the official sigmoid when ``out_channels == 1`` (for parity checks).
        use_checkpoint: activation checkpointing of the VSS blocks.
        spatial_dims: must be 2.
    Input sides must be multiples of ``4 * 2**(len(depths) - 1)`` (32 for four stages).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, depths: Sequence[int] = (2, 2, 2, 2),
                 depths_decoder: Sequence[int] = (2, 2, 2, 1), feature_size: int = 96, d_state: int = 16,
                 drop_path_rate: float = 0.2, sigmoid_single_class: bool = False, use_checkpoint: bool = False,
                 spatial_dims: int = 2, *, input_channels: Optional[int] = None, num_classes: Optional[int] = None):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"VM-UNet is a 2-D network (spatial_dims=2), got spatial_dims={spatial_dims}")
        in_channels = _alias("in_channels", in_channels, "input_channels", input_channels, 3)
        out_channels = _alias("out_channels", out_channels, "num_classes", num_classes, 1)
        depths, depths_decoder = list(depths), list(depths_decoder)
        if len(depths) != len(depths_decoder):
            raise ValueError(f"depths {depths} and depths_decoder {depths_decoder} need the same number of stages")
        n = len(depths)
        dims = [feature_size * 2 ** i for i in range(n)]
        self.in_channels, self.out_channels = in_channels, out_channels
        self.sigmoid_single_class, self.use_checkpoint = sigmoid_single_class, use_checkpoint
        self.multiple = 4 * 2 ** (n - 1)
        self.patch_embed = PatchEmbed(in_channels, dims[0], patch_size=4, norm=True, channels_last=True)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        dpr_dec = torch.linspace(0, drop_path_rate, sum(depths_decoder), device="cpu").tolist()[::-1]
        self.encoder = nn.ModuleList([
            EncoderStage(dims[i], depths[i], dpr[sum(depths[:i]):sum(depths[:i + 1])], d_state, i < n - 1)
            for i in range(n)])
        dec_dims = dims[::-1]
        self.decoder = nn.ModuleList([
            DecoderStage(dec_dims[i], depths_decoder[i],
                         dpr_dec[sum(depths_decoder[:i]):sum(depths_decoder[:i + 1])], d_state, i > 0)
            for i in range(n)])
        self.final_expand = PatchExpand(dims[0], dims[0] // 4, scale=4)
        self.final_conv = nn.Conv2d(dims[0] // 4, out_channels, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # VM-UNet's init: truncated-normal linears with zero bias, unit LayerNorms (convs keep PyTorch's).
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _blocks(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            if self.use_checkpoint and x.requires_grad:
                x = torch_checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        allowed = (self.in_channels, 1) if self.in_channels == 3 else (self.in_channels,)
        check_image(x, network="VMUNet", spatial_dims=2, in_channels=allowed, multiple=self.multiple,
                    min_size=self.multiple)
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        x = self.patch_embed(x)
        skips = []
        for stage in self.encoder:
            skips.append(x)
            x = self._blocks(stage.blocks, x)
            if stage.downsample is not None:
                x = stage.downsample(x)
        for i, stage in enumerate(self.decoder):
            if stage.upsample is not None:
                x = stage.upsample(x + skips[-i])
            x = self._blocks(stage.blocks, x)
        logits = self.final_conv(self.final_expand(x).permute(0, 3, 1, 2))
        if self.sigmoid_single_class and self.out_channels == 1:
            return torch.sigmoid(logits)
        return logits


def vmunet_isic(**kwargs) -> VMUNet:
    """The published ISIC setting: 1 class, 3x256x256 inputs."""
    return VMUNet(**{"in_channels": 3, "out_channels": 1, **kwargs})


def vmunet_synapse(**kwargs) -> VMUNet:
    """The published Synapse setting: 9 classes, 3x224x224 inputs."""
    return VMUNet(**{"in_channels": 3, "out_channels": 9, **kwargs})
