"""Shared building blocks of the model families."""

from .downsample import ConvDownsample, PatchMerging, pad_to_even
from .linear import PointwiseLinear
from .mlp import Mlp
from .norm import LayerNorm, LayerNorm2d, channel_norm
from .patch_embed import ConvStem, PatchEmbed
from .ss2d import OUT_NORMS, SS2D, RoutedSSM, resolve_dt_rank
from .vss_block import VSSBlock

__all__ = [
    "OUT_NORMS",
    "ConvDownsample",
    "ConvStem",
    "LayerNorm",
    "LayerNorm2d",
    "Mlp",
    "PatchEmbed",
    "PatchMerging",
    "PointwiseLinear",
    "RoutedSSM",
    "SS2D",
    "VSSBlock",
    "channel_norm",
    "pad_to_even",
    "resolve_dt_rank",
]
