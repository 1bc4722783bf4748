"""SegMamba (3-D): a conv stem, GSC blocks and tri-orientated Mamba layers, with a UNETR-style decoder.

Architecture as in the official SegMamba (``model_segmamba/segmamba.py`` and its Mamba fork): per stage a
downsampling conv, a gated spatial conv (GSC) block, ``depths[i]`` tri-orientated Mamba layers, then an
instance norm and a 1x1-conv MLP feed the decoder; the decoder is MONAI's UNETR blocks.

The tri-orientated Mamba layer is :class:`~vssm.layers.mamba_mixer.RoutedMambaMixer` with three routes, one
routed scan call for all three, each route with its own conv1d, x/dt projections, A and D (in/out projections
shared), outputs summed (not averaged):

- forward: the flattened volume in (D, H, W) order, W fastest;
- backward: the same order reversed;
- inter-slice: depth fastest, i.e. for each (h, w) the column through every slice.

The official fork builds the inter-slice order by cutting the flat sequence into ``num_slices`` chunks and
interleaving them; that is "depth fastest" exactly when the depth equals ``num_slices`` (64, 32, 16, 8 for its
128^3 input). ``inter_slice="depth"`` (default) always scans along depth, whatever the size;
``inter_slice="chunks"`` reproduces the official chunking at any size (the volume is viewed as a
(num_slices, L / num_slices) grid and scanned column-major), for parity with official weights run at sizes
other than 128^3. Both are route data: no kernel special case.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as torch_checkpoint

from vssm.kernels import Route, route_set
from vssm.layers.mamba_mixer import RoutedMambaMixer

from .checks import as_tuple, check_image

__all__ = ["SegMamba", "TriOrientedMambaLayer", "GSC", "SegMambaEncoder", "tri_orientated_routes"]

INTER_SLICE_MODES = ("depth", "chunks")


def tri_orientated_routes(mode: str = "depth"):
    """SegMamba's three routes: over a (D, H, W) grid (``"depth"``) or over the official (num_slices,
    L / num_slices) view of the flat sequence (``"chunks"``)."""
    if mode == "depth":
        return route_set([Route((0, 1, 2)), Route((0, 1, 2), flips=(True, True, True)), Route((1, 2, 0))],
                         name="tri_orientated")
    if mode == "chunks":
        return route_set([Route((0, 1)), Route((0, 1), flips=(True, True)), Route((1, 0))],
                         name="tri_orientated_chunks")
    raise ValueError(f"inter_slice must be one of {INTER_SLICE_MODES}, got {mode!r}")


def _norm3d(norm_name, channels: int) -> nn.Module:
    from monai.networks.layers.utils import get_norm_layer

    return get_norm_layer(norm_name, spatial_dims=3, channels=channels)


class TriOrientedMambaLayer(nn.Module):
    """Pre-norm residual Mamba over a volume (b, c, D, H, W) along the three SegMamba routes."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 inter_slice: str = "depth", num_slices: Optional[int] = None):
        super().__init__()
        if inter_slice == "chunks" and not num_slices:
            raise ValueError("inter_slice='chunks' needs num_slices (the official chunk count)")
        self.dim = dim
        self.inter_slice = inter_slice
        self.num_slices = num_slices
        self.norm = nn.LayerNorm(dim)
        self.mixer = RoutedMambaMixer(dim, routes=tri_orientated_routes(inter_slice), d_state=d_state,
                                      d_conv=d_conv, expand=expand, divide_by_routes=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        tokens = x.permute(0, 2, 3, 4, 1)                                  # (b, D, H, W, c)
        if self.inter_slice == "chunks":
            n = tokens[0, ..., 0].numel()
            if n % self.num_slices:
                raise ValueError(f"inter_slice='chunks' needs the {n} tokens of a {tuple(x.shape[2:])} volume "
                                 f"to split into num_slices={self.num_slices} equal chunks")
            tokens = tokens.reshape(b, self.num_slices, n // self.num_slices, c)
        y = self.mixer(self.norm(tokens)).reshape(b, *x.shape[2:], c).permute(0, 4, 1, 2, 3)
        return y + x

    def extra_repr(self) -> str:
        return f"inter_slice={self.inter_slice}" + (f", num_slices={self.num_slices}" if self.num_slices else "")


class GSC(nn.Module):
    """Gated spatial convolution: (3x3x3 conv-norm-ReLU twice) + (1x1x1 conv-norm-ReLU), summed, then a
    1x1x1 conv-norm-ReLU, plus the input."""

    def __init__(self, channels: int, norm_name="instance"):
        super().__init__()

        def conv_norm_act(kernel: int, index: str):
            self.add_module(f"proj{index}", nn.Conv3d(channels, channels, kernel, 1, kernel // 2))
            self.add_module(f"norm{index}", _norm3d(norm_name, channels))
            self.add_module(f"nonliner{index}", nn.ReLU())

        for kernel, index in ((3, ""), (3, "2"), (1, "3"), (1, "4")):
            conv_norm_act(kernel, index)

    def _cna(self, x, index: str):
        return getattr(self, f"nonliner{index}")(getattr(self, f"norm{index}")(getattr(self, f"proj{index}")(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self._cna(self._cna(x, ""), "2")
        point = self._cna(x, "3")
        return self._cna(spatial + point, "4") + x


class MlpChannel(nn.Module):
    """1x1x1 conv -> GELU -> 1x1x1 conv."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv3d(hidden, channels, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SegMambaEncoder(nn.Module):
    """Four stages; returns the four stage features (after norm + MLP), strides 2, 4, 8, 16."""

    def __init__(self, in_channels: int, depths: Sequence[int], widths: Sequence[int], norm_name="instance",
                 inter_slice: str = "depth", num_slices: Optional[Sequence[int]] = None,
                 use_checkpoint: bool = False, d_state: int = 16):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv3d(in_channels, widths[0], 7, 2, 3))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(_norm3d(norm_name, widths[i]),
                                                        nn.Conv3d(widths[i], widths[i + 1], 2, 2)))
        slices = num_slices or [None] * 4
        self.gscs = nn.ModuleList([GSC(w, norm_name) for w in widths])
        self.stages = nn.ModuleList([
            nn.Sequential(*[TriOrientedMambaLayer(widths[i], d_state=d_state, inter_slice=inter_slice,
                                                  num_slices=slices[i])
                            for _ in range(depths[i])])
            for i in range(4)])
        self.out_norms = nn.ModuleList([_norm3d(norm_name, w) for w in widths])
        self.mlps = nn.ModuleList([MlpChannel(w, 2 * w) for w in widths])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(4):
            x = self.gscs[i](self.downsample_layers[i](x))
            for layer in self.stages[i]:
                if self.use_checkpoint and x.requires_grad:
                    x = torch_checkpoint.checkpoint(layer, x, use_reentrant=False)
                else:
                    x = layer(x)
            outs.append(self.mlps[i](self.out_norms[i](x)))
        return outs


def _pick(name: str, value, alias_name: str, alias, default):
    """The MONAI-named argument, or the official alias if only that one was given."""
    if alias is None:
        return value
    if value is not None and value != default and value != alias:
        raise ValueError(f"got both {name}={value!r} and its official alias {alias_name}={alias!r}")
    return alias


class SegMamba(nn.Module):
    """SegMamba for 3-D volumes, returning logits (no activation).

    Args (MONAI names; the official ``in_chans``, ``out_chans``, ``feat_size`` are accepted too):
        in_channels, out_channels: input channels and classes.
        depths: Mamba layers per stage (4 stages; 0 leaves a stage with its GSC block only).
        feature_size: widths of the four stages, or an int ``f`` for (f, 2f, 4f, 8f).
        hidden_size: width of the bottleneck block.
        norm_name: norm of the encoder's conv blocks and of the decoder (MONAI name or tuple); "instance" as
            published; "batch" keeps absolute intensity, which matters when classes are defined by it.
        res_block: residual UNETR blocks.
        inter_slice: "depth" or "chunks" (see the module docstring); num_slices: per-stage chunk counts for
            "chunks" (official: 64, 32, 16, 8 at 128^3).
        use_checkpoint: activation checkpointing of the Mamba layers (3-D memory).
        d_state: SSM state size (16 as published).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 13, depths: Sequence[int] = (2, 2, 2, 2),
                 feature_size=(48, 96, 192, 384), hidden_size: int = 768, norm_name="instance",
                 res_block: bool = True, spatial_dims: int = 3, inter_slice: str = "depth",
                 num_slices: Optional[Sequence[int]] = None, use_checkpoint: bool = False, d_state: int = 16, *,
                 in_chans: Optional[int] = None, out_chans: Optional[int] = None, feat_size=None):
        super().__init__()
        from monai.networks.blocks.dynunet_block import UnetOutBlock
        from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock

        if spatial_dims != 3:
            raise ValueError(f"SegMamba is a 3-D network (spatial_dims=3), got spatial_dims={spatial_dims}")
        in_channels = _pick("in_channels", in_channels, "in_chans", in_chans, 1)
        out_channels = _pick("out_channels", out_channels, "out_chans", out_chans, 13)
        feature_size = feat_size if feat_size is not None else feature_size
        widths = ([feature_size * 2 ** i for i in range(4)] if isinstance(feature_size, int)
                  else list(feature_size))
        depths = list(as_tuple(depths, 4, "depths"))
        if len(widths) != 4:
            raise ValueError(f"SegMamba has 4 stages: feature_size needs 4 widths, got {widths}")
        if inter_slice not in INTER_SLICE_MODES:
            raise ValueError(f"inter_slice must be one of {INTER_SLICE_MODES}, got {inter_slice!r}")
        if inter_slice == "chunks":
            num_slices = list(as_tuple(num_slices if num_slices is not None else (64, 32, 16, 8), 4, "num_slices"))
        self.in_channels, self.out_channels, self.widths = in_channels, out_channels, widths
        self.vit = SegMambaEncoder(in_channels, depths, widths, norm_name, inter_slice, num_slices,
                                   use_checkpoint, d_state)
        basic = dict(spatial_dims=3, kernel_size=3, stride=1, norm_name=norm_name, res_block=res_block)
        up = dict(spatial_dims=3, kernel_size=3, upsample_kernel_size=2, norm_name=norm_name, res_block=res_block)
        self.encoder1 = UnetrBasicBlock(in_channels=in_channels, out_channels=widths[0], **basic)
        self.encoder2 = UnetrBasicBlock(in_channels=widths[0], out_channels=widths[1], **basic)
        self.encoder3 = UnetrBasicBlock(in_channels=widths[1], out_channels=widths[2], **basic)
        self.encoder4 = UnetrBasicBlock(in_channels=widths[2], out_channels=widths[3], **basic)
        self.encoder5 = UnetrBasicBlock(in_channels=widths[3], out_channels=hidden_size, **basic)
        self.decoder5 = UnetrUpBlock(in_channels=hidden_size, out_channels=widths[3], **up)
        self.decoder4 = UnetrUpBlock(in_channels=widths[3], out_channels=widths[2], **up)
        self.decoder3 = UnetrUpBlock(in_channels=widths[2], out_channels=widths[1], **up)
        self.decoder2 = UnetrUpBlock(in_channels=widths[1], out_channels=widths[0], **up)
        self.decoder1 = UnetrBasicBlock(in_channels=widths[0], out_channels=widths[0], **basic)
        self.out = UnetOutBlock(spatial_dims=3, in_channels=widths[0], out_channels=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, network="SegMamba", spatial_dims=3, in_channels=self.in_channels, multiple=16,
                    min_size=16)
        feats = self.vit(x)
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(feats[0])
        enc3 = self.encoder3(feats[1])
        enc4 = self.encoder4(feats[2])
        hidden = self.encoder5(feats[3])
        dec = self.decoder5(hidden, enc4)
        dec = self.decoder4(dec, enc3)
        dec = self.decoder3(dec, enc2)
        dec = self.decoder2(dec, enc1)
        return self.out(self.decoder1(dec))
