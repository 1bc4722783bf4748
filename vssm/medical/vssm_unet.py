"""VSSMUNet: a UNet for 2-D images or 3-D volumes with VMamba blocks in the encoder, MONAI blocks elsewhere.

Encoder: a stride-2 patch embedding, then ``len(depths)`` stages of VSS blocks (SS2D mixer on ``cross2d``
routes for 2-D, ``cross3d`` for 3-D: every axis as the fastest one, both ways) with a stride-2 conv + LayerNorm
between stages. Each stage's output and the input image pass through a MONAI ``UnetrBasicBlock`` to become
skips; MONAI ``UnetrUpBlock`` s decode, and a ``UnetOutBlock`` gives logits (no activation). Arguments follow
MONAI's (``spatial_dims``, ``in_channels``, ``out_channels``, ``feature_size``, ``norm_name``, ``res_block``,
``deep_supervision``); ``norm_name`` sets the norm of every conv block ("batch" keeps absolute intensity,
which instance norm removes).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as torch_checkpoint

from vssm.kernels import RouteSet, cross2d, cross3d
from vssm.layers.norm import channel_norm
from vssm.layers.vss_block import VSSBlock

from .checks import check_image

__all__ = ["VSSMUNet"]


def _conv(spatial_dims: int):
    return nn.Conv3d if spatial_dims == 3 else nn.Conv2d


def _to_last(x):   # (b, c, *s) -> (b, *s, c)
    return x.movedim(1, -1)


def _to_first(x):  # (b, *s, c) -> (b, c, *s)
    return x.movedim(-1, 1)


class StridedEmbed(nn.Module):
    """A stride-2, kernel-2 conv to ``out_dim`` channels, then LayerNorm; channels-first in, channels-last out."""

    def __init__(self, spatial_dims: int, in_dim: int, out_dim: int):
        super().__init__()
        self.conv = _conv(spatial_dims)(in_dim, out_dim, kernel_size=2, stride=2)
        self.norm = channel_norm(out_dim, channels_last=True)

    def forward(self, x):
        return self.norm(_to_last(self.conv(x)))


class VSSStage(nn.Module):
    def __init__(self, dim: int, depth: int, routes: RouteSet, drop_paths: Sequence[float], d_state: int,
                 ssm_ratio: float, mlp_ratio: float):
        super().__init__()
        mixer = dict(routes=routes, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank="auto", conv_size=3,
                     gate=True, out_norm="layernorm")
        self.blocks = nn.ModuleList([VSSBlock(dim, drop_path=drop_paths[i], mlp_ratio=mlp_ratio,
                                              mixer_kwargs=mixer) for i in range(depth)])


class VSSMUNet(nn.Module):
    """UNet with VMamba (VSS) encoder stages, for ``spatial_dims`` 2 or 3.

    Args:
        spatial_dims: 2 (images, ``cross2d`` routes) or 3 (volumes, ``cross3d`` routes).
        in_channels, out_channels: input channels and classes.
        feature_size: width of the first stage; stage i has ``feature_size * 2**i``.
        depths: VSS blocks per encoder stage; a 0 makes that stage conv-only (cheap high-resolution stages).
        d_state, ssm_ratio, mlp_ratio: VSS block sizes (``mlp_ratio=0``: no MLP branch, as VMamba v0).
        norm_name: norm of the conv blocks (MONAI name or (name, kwargs)), e.g. "instance" or "batch".
        res_block: residual conv blocks.  drop_path_rate: stochastic depth over the VSS blocks.
        deep_supervision: in training mode also return logits from the ``num_deep_supervision`` coarser
            decoder levels (a list, finest first), for ``monai.losses.DeepSupervisionLoss``.
        routes: override the route set (3-D sets need ``spatial_dims=3``).
        use_checkpoint: activation checkpointing of the VSS blocks.
    Input sides must be multiples of ``2**len(depths)``.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2, feature_size: int = 24,
                 depths: Sequence[int] = (2, 2, 2, 2), d_state: int = 16, ssm_ratio: float = 2.0,
                 mlp_ratio: float = 0.0, norm_name="instance", res_block: bool = True, drop_path_rate: float = 0.0,
                 deep_supervision: bool = False, num_deep_supervision: int = 1,
                 routes: Optional[RouteSet] = None, use_checkpoint: bool = False):
        super().__init__()
        from monai.networks.blocks.dynunet_block import UnetOutBlock
        from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock

        if spatial_dims not in (2, 3):
            raise ValueError(f"VSSMUNet supports spatial_dims 2 or 3, got {spatial_dims}")
        routes = routes if routes is not None else (cross3d() if spatial_dims == 3 else cross2d())
        if routes.ndim != spatial_dims:
            raise ValueError(f"route set '{routes.name}' scans {routes.ndim}-D grids but spatial_dims={spatial_dims}")
        depths = list(depths)
        if not depths or min(depths) < 0 or max(depths) < 1:
            raise ValueError(f"depths needs stages of >= 0 blocks, at least one VSS block in all, got {depths}")
        n = len(depths)
        if deep_supervision and not 1 <= num_deep_supervision <= n - 1:
            raise ValueError(f"num_deep_supervision must be in 1..{n - 1} for {n} stages, got {num_deep_supervision}")
        dims = [feature_size * 2 ** i for i in range(n)]
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.multiple = 2 ** n
        self.deep_supervision, self.num_deep_supervision = deep_supervision, num_deep_supervision
        self.use_checkpoint = use_checkpoint

        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.embed = StridedEmbed(spatial_dims, in_channels, dims[0])
        self.stages = nn.ModuleList([
            VSSStage(dims[i], depths[i], routes, dpr[sum(depths[:i]):sum(depths[:i + 1])], d_state, ssm_ratio,
                     mlp_ratio) for i in range(n)])
        self.downsamples = nn.ModuleList([StridedEmbed(spatial_dims, dims[i], dims[i + 1]) for i in range(n - 1)])

        basic = dict(spatial_dims=spatial_dims, kernel_size=3, stride=1, norm_name=norm_name, res_block=res_block)
        up = dict(spatial_dims=spatial_dims, kernel_size=3, upsample_kernel_size=2, norm_name=norm_name,
                  res_block=res_block)
        self.input_skip = UnetrBasicBlock(in_channels=in_channels, out_channels=feature_size, **basic)
        self.skips = nn.ModuleList([UnetrBasicBlock(in_channels=d, out_channels=d, **basic) for d in dims])
        # decoder level i upsamples from stage i+1 (or the input level for i = -1) ...
        self.ups = nn.ModuleList([UnetrUpBlock(in_channels=dims[i + 1], out_channels=dims[i], **up)
                                  for i in range(n - 1)])
        self.up_to_input = UnetrUpBlock(in_channels=dims[0], out_channels=feature_size, **up)
        self.out = UnetOutBlock(spatial_dims=spatial_dims, in_channels=feature_size, out_channels=out_channels)
        self.aux_heads = nn.ModuleList([
            UnetOutBlock(spatial_dims=spatial_dims, in_channels=dims[i], out_channels=out_channels)
            for i in range(num_deep_supervision)]) if deep_supervision else None

    def _stage(self, stage: VSSStage, x: torch.Tensor) -> torch.Tensor:
        for blk in stage.blocks:
            if self.use_checkpoint and x.requires_grad:
                x = torch_checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor):
        check_image(x, network="VSSMUNet", spatial_dims=self.spatial_dims, in_channels=self.in_channels,
                    multiple=self.multiple, min_size=self.multiple)
        feats = []
        h = self.embed(x)
        for i, stage in enumerate(self.stages):
            h = self._stage(stage, h)
            feats.append(self.skips[i](_to_first(h)))
            if i < len(self.downsamples):
                h = self.downsamples[i](_to_first(h))
        dec = feats[-1]
        levels = []
        for i in range(len(self.ups) - 1, -1, -1):
            dec = self.ups[i](dec, feats[i])
            levels.append(dec)
        logits = self.out(self.up_to_input(dec, self.input_skip(x)))
        if self.deep_supervision and self.training:
            # levels[-1] is stage 0's resolution (stride 2), levels[-2] stride 4, ...
            aux = [head(levels[-1 - i]) for i, head in enumerate(self.aux_heads)]
            return [logits] + aux
        return logits
