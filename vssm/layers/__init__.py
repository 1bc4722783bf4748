"""Shared building blocks of the model families."""

from .channel_attention import ChannelAttention
from .conv_ffn import ConvFFN
from .downsample import ConvDownsample, PatchMerging, pad_to_even
from .linear import PointwiseLinear
from .mlp import Mlp
from .ms_ss2d import ChainedRoutedSSM, MultiScaleSS2D
from .norm import LayerNorm, LayerNorm2d, channel_norm
from .patch_embed import ConvStem, PatchEmbed
from .ss2d import OUT_NORMS, SS2D, RoutedSSM, resolve_dt_rank
from .vss_block import VSSBlock

__all__ = [
    "OUT_NORMS",
    "ChainedRoutedSSM",
    "ChannelAttention",
    "ConvDownsample",
    "ConvFFN",
    "ConvStem",
    "LayerNorm",
    "LayerNorm2d",
    "Mlp",
    "MultiScaleSS2D",
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
