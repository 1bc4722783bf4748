"""Building blocks of the video models, in channels-first layout (frames folded into the batch).

Numerics follow the JAX reference: GroupNorm and LayerNorm use eps 1e-6 and "gelu" is the tanh
approximation. The names of the sub-modules mirror the reference's parameter tree so that
``flax_convert`` can map one onto the other.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["EPS", "activation_fn", "init_like_flax_", "ChannelLayerNorm", "group_norm", "ResNetBlock", "ResNetEncoder",
           "ResNetDecoder", "ResnetOutput", "StandardOutput", "HalfGLUOutput", "make_output_block"]

EPS = 1e-6   # the reference's norm epsilon (PyTorch's default is 1e-5)

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "swish": F.silu,
    "elu": F.elu,
}


def activation_fn(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


def init_like_flax_(module: nn.Module) -> nn.Module:
    """Re-initialise every Conv2d below ``module`` as flax does by default: LeCun normal (variance 1/fan_in,
    truncated at two standard deviations; a conv's ``flax_init_scale`` attribute changes the 1) for the kernel
    and zeros for the bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            std = (getattr(m, "flax_init_scale", 1.0) / fan_in) ** 0.5 / 0.87962566103423978
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def group_norm(num_groups: int, channels: int) -> nn.GroupNorm:
    if channels % num_groups:
        raise ValueError(f"GroupNorm with {num_groups} groups needs a channel count divisible by it, got {channels}")
    return nn.GroupNorm(num_groups, channels, eps=EPS)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis (dim 1) of an (N, C, H, W) map: the reference's per-pixel norm."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    """A 'SAME'-padded stride-1 convolution (odd kernels only, where SAME is symmetric)."""
    if k % 2 == 0:
        raise ValueError(f"kernel sizes must be odd (symmetric 'same' padding), got {k}")
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class ResNetBlock(nn.Module):
    """Encoder/decoder block: ELU pre-activation, two 3x3 convs, the second without bias but followed by a
    separate bias, and a residual scaled by 0.1; a 1x1 projection on the skip when widths differ."""

    def __init__(self, cin: int, cout: int, num_groups: int = 32):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.norm1 = group_norm(num_groups, cin)
        self.conv1 = conv(cin, cout, 3)
        self.norm2 = group_norm(num_groups, cout)
        self.conv2 = conv(cout, cout, 3, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        skip = x if self.skip is None else self.skip(x)
        h = self.conv1(F.elu(self.norm1(x)))
        h = self.conv2(F.elu(self.norm2(h))) + self.bias[:, None, None]
        return skip + 0.1 * h


class ResNetEncoder(nn.Module):
    """Frames to latents: a 3x3 conv, a block, then per further depth a 2x2 average pool and ``blocks`` blocks."""

    def __init__(self, in_chans: int, depths=(64, 128, 256), blocks: int = 1, num_groups: int = 32):
        super().__init__()
        self.stem = conv(in_chans, depths[0], 3)
        layers = [ResNetBlock(depths[0], depths[0], num_groups)]
        cin = depths[0]
        for depth in depths[1:]:
            layers.append(nn.AvgPool2d(2))
            for _ in range(blocks):
                layers.append(ResNetBlock(cin, depth, num_groups))
                cin = depth
        self.layers = nn.Sequential(*layers)
        self.out_chans = cin
        self.reduction = 2 ** (len(depths) - 1)

    def forward(self, x):
        return self.layers(self.stem(x))


class ResNetDecoder(nn.Module):
    """Latents to frames, mirroring the encoder: a 3x3 conv to ``depths[0]`` channels (the reference's
    choice, not the reversed first depth), blocks and nearest 2x upsampling, LayerNorm, a 1x1 projection."""

    def __init__(self, in_chans: int, out_chans: int, depths=(64, 128, 256), blocks: int = 1, num_groups: int = 32):
        super().__init__()
        rev = list(reversed(depths))
        self.stem = conv(in_chans, depths[0], 3)
        layers, cin = [], depths[0]
        for i, depth in enumerate(rev):
            for _ in range(blocks):
                layers.append(ResNetBlock(cin, depth, num_groups))
                cin = depth
            if i < len(rev) - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.layers = nn.Sequential(*layers)
        self.norm = ChannelLayerNorm(cin)
        self.head = nn.Conv2d(cin, out_chans, 1)

    def forward(self, x):
        return self.head(self.norm(self.layers(self.stem(x))))


# Output blocks of a ConvS5 layer (the reference's "C_D" options), applied to y = 2 Re(C x) per frame.

class ResnetOutput(nn.Module):
    """"resnet": act(y + conv(act(GN(conv(act(GN(y))))))), the block every shipped config uses."""

    def __init__(self, dim: int, k: int, num_groups: int, act):
        super().__init__()
        self.act = act
        self.norm1 = group_norm(num_groups, dim)
        self.conv1 = conv(dim, dim, k)
        self.norm2 = group_norm(num_groups, dim)
        self.conv2 = conv(dim, dim, k)

    def forward(self, y, u):
        h = self.conv1(self.act(self.norm1(y)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.act(y + h)


class StandardOutput(nn.Module):
    """"standard": act(GN(y + D conv u)), the feed-through D as a k_D x k_D convolution of the input."""

    def __init__(self, dim: int, k: int, num_groups: int, act):
        super().__init__()
        self.act = act
        self.conv = conv(dim, dim, k)
        self.norm = group_norm(num_groups, dim)

    def forward(self, y, u):
        return self.act(self.norm(y + self.conv(u)))


class HalfGLUOutput(nn.Module):
    """"half_glu": z = gelu(LN(y)), z * sigmoid(W z) per pixel (always the tanh GELU, as in the reference)."""

    def __init__(self, dim: int, k: int, num_groups: int, act):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj.flax_init_scale = 0.2     # the reference's gate initialiser

    def forward(self, y, u):
        z = F.gelu(self.norm(y), approximate="tanh")
        return z * torch.sigmoid(self.proj(z))


class _NoOutput(nn.Module):
    def forward(self, y, u):
        return y


OUTPUT_BLOCKS = {"resnet": ResnetOutput, "standard": StandardOutput, "half_glu": HalfGLUOutput,
                 # The reference builds a block for "diag_resnet" but never calls it, so the layer returns
                 # 2 Re(C x) as it is and the block has no parameters; we reproduce that.
                 "diag_resnet": lambda *args: _NoOutput()}


def make_output_block(name: str, dim: int, k: int, num_groups: int, act) -> nn.Module:
    if name not in OUTPUT_BLOCKS:
        raise ValueError(f"c_d_block must be one of {sorted(OUTPUT_BLOCKS)}, got {name!r}")
    return OUTPUT_BLOCKS[name](dim, k, num_groups, act)
