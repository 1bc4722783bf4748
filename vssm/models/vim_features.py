"""``features_only`` for Vim: a 4-level pyramid (strides 4, 8, 16, 32) from four blocks' token maps.

Vim's segmentation backbone (hustvl/Vim ``seg/backbone/vim.py``, after ViTDet / BEiT) taps four blocks (by default
the last of each quarter of the depth: 5, 11, 17, 23 for 24 blocks), reshapes each to a map at the patch stride,
and rescales them to strides 4/8/16/32 with transposed convs, identity and max-pooling. At patch stride 16:
deconv-BN-GELU-deconv (x4), deconv (x2), identity, max-pool 2; at patch stride 8: deconv, identity, max-pool 2,
max-pool 4. The official backbone takes the blocks' mixer outputs (``take_from="mixer"``); "stream" takes the
residual stream instead.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from timm.models import FeatureInfo

__all__ = ["VimFeaturePyramid", "pyramid_rescalers", "default_pyramid_layers"]

PYRAMID_STRIDES = (4, 8, 16, 32)


def default_pyramid_layers(depth: int) -> tuple:
    """The last block of each quarter of the depth (5, 11, 17, 23 for 24 blocks)."""
    if depth < 4:
        raise ValueError(f"a 4-level pyramid needs at least 4 blocks, the model has {depth}")
    return tuple(depth * (q + 1) // 4 - 1 for q in range(4))


def pyramid_rescalers(dim: int, patch_stride: int, device=None, dtype=None) -> nn.ModuleList:
    """The four modules taking a stride-``patch_stride`` map to strides 4, 8, 16, 32."""
    dd = dict(device=device, dtype=dtype)

    def up():
        return nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2, **dd)

    if patch_stride == 16:
        return nn.ModuleList([
            nn.Sequential(up(), nn.BatchNorm2d(dim, **dd), nn.GELU(), up()),
            up(),
            nn.Identity(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        ])
    if patch_stride == 8:
        return nn.ModuleList([up(), nn.Identity(), nn.MaxPool2d(2, 2), nn.MaxPool2d(4, 4)])
    raise ValueError(f"the Vim feature pyramid is defined for patch strides 8 and 16, got {patch_stride}")


class VimFeaturePyramid(nn.Module):
    """Wraps a :class:`~vssm.models.vim.VisionMamba`; ``forward`` returns a list of NCHW maps.

    Args:
        model: the Vim model (its head and the blocks after the last tapped one are removed).
        out_indices: which pyramid levels (0..3, strides 4/8/16/32) to return.
        layer_indices: the four blocks feeding levels 0..3 (default: last block of each depth quarter).
        take_from: "mixer" (official) or "stream", see ``VisionMamba.forward_intermediates``.
        norm: apply the model's final RMSNorm to the tapped tokens.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] = (0, 1, 2, 3),
                 layer_indices: Optional[Sequence[int]] = None, take_from: str = "mixer", norm: bool = False):
        super().__init__()
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i < 0 or i > 3 for i in out_indices):
            raise ValueError(f"out_indices pick pyramid levels 0..3, got {out_indices}")
        depth = len(model.blocks)
        layer_indices = tuple(default_pyramid_layers(depth) if layer_indices is None else layer_indices)
        if len(layer_indices) != 4 or any(not 0 <= i < depth for i in layer_indices):
            raise ValueError(f"layer_indices must be 4 block indices in [0, {depth}), got {layer_indices}")
        self.out_indices = out_indices
        self.layer_indices = layer_indices
        self.take_from = take_from
        self.norm = norm
        w = model.patch_embed.proj.weight
        self.rescale = pyramid_rescalers(model.embed_dim, model.patch_embed.stride, device=w.device, dtype=w.dtype)
        # the rescalers keep PyTorch's default init, as in the official backbone
        model.prune_intermediate_layers(list(layer_indices), prune_norm=not norm, prune_head=True)
        self.model = model
        self.feature_info = FeatureInfo(
            [dict(module=f"rescale.{i}", num_chs=model.embed_dim, reduction=PYRAMID_STRIDES[i]) for i in range(4)],
            out_indices)

    def forward(self, x: torch.Tensor):
        blocks = sorted(set(self.layer_indices))  # a block may feed several levels
        taps = self.model.forward_intermediates(
            x, indices=blocks, norm=self.norm, stop_early=True, output_fmt="NCHW",
            intermediates_only=True, take_from=self.take_from)
        tap_of = dict(zip(blocks, taps))
        return [self.rescale[i](tap_of[self.layer_indices[i]]) for i in self.out_indices]
