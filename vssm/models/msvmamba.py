"""MSVMamba: VMamba with a multi-scale 2-D scan (MS2D) and a convolutional FFN.

Paper: "Multi-Scale VMamba: Hierarchy in Hierarchy Visual State Space Model" (Shi et al., 2024),
https://arxiv.org/abs/2405.14174. Reference code: https://github.com/YuHengsss/MSVMamba
(classification/models/vmamba.py, configs ``configs/ms_vssm/vssm_{nano,micro,tiny}_224_ms.yaml``).

Registered models: ``msvmamba_nano`` / ``msvmamba_micro`` / ``msvmamba_tiny`` (dims 48 / 64 / 96, depths
1-2-5-2 / 1-2-5-2 / 1-2-9-2). Every block is ``x + mixer(norm1(x))`` then ``x + ConvFFN(norm2(x))`` (hidden
width 2x), the mixer being ``vssm.layers.MultiScaleSS2D``: d_state 1, inner width 2x, one row-major route on
the full-resolution map and three chained routes on a stride-2 copy of it (see that module), channel
attention and a SiLU gate. Stem: 4x4 patch embedding; downsampling: 2x2 patch merging.

The model reuses VMamba's timm interface (features, intermediates, head, pruning); only the blocks differ.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, calculate_drop_path_rates, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model

from vssm.kernels import RouteSet
from vssm.layers import PatchEmbed, PatchMerging, VSSBlock, channel_norm
from vssm.layers.conv_ffn import ConvFFN
from vssm.layers.ms_ss2d import MultiScaleSS2D

from .vmamba import VMamba
from ._checkpoint import raise_if_incomplete

__all__ = ["MSVMamba", "MSVMambaStage", "checkpoint_filter_fn"]


class MSVMambaStage(nn.Module):
    """An optional 2x2 patch merging (dim -> dim_out), then ``depth`` MS2D blocks of width dim_out."""

    def __init__(self, dim: int, dim_out: int, depth: int, *, downsample: bool = False,
                 drop_path: Sequence[float] = (), ffn_ratio: float = 2.0, ffn_drop: float = 0.0,
                 mixer_kwargs: Optional[Dict[str, Any]] = None, norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.grad_checkpointing = False
        self.downsample = PatchMerging(dim, dim_out, norm_eps=norm_eps, **dd) if downsample else nn.Identity()
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            VSSBlock(dim_out, drop_path=drop_path[j], mlp_ratio=ffn_ratio, mlp_drop=ffn_drop, mlp_layer=ConvFFN,
                     mixer_layer=MultiScaleSS2D, mixer_kwargs=mixer_kwargs, norm_eps=norm_eps, **dd)
            for j in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class MSVMamba(VMamba):
    """MSVMamba backbone and classifier, on (B, H, W, C) maps.

    Args:
        in_chans, num_classes, global_pool, drop_rate: as in every timm model.
        depths: blocks per stage.  dims: width per stage, or the first stage's width (doubled per stage).
        d_state, ssm_ratio, dt_rank: the SSM of the MS2D mixer (state size, inner width / dim, dt rank).
        routes: full-resolution routes; coarse_routes: chained routes on the stride-2 map (None: the released
            models' routes, see ``vssm.layers.ms_ss2d``).
        coarse_conv_size: kernel of the stride-2 depthwise conv making the coarse map.
        channel_attention: squeeze-and-excitation on the mixer output.
        ffn_ratio: ConvFFN hidden width / dim.  ffn_drop: its dropout.
        drop_path_rate: stochastic depth, rising linearly over all blocks from 0.
        norm_eps: eps of every LayerNorm.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            depths: Sequence[int] = (1, 2, 9, 2),
            dims: Union[int, Sequence[int]] = 96,
            d_state: int = 1,
            ssm_ratio: float = 2.0,
            dt_rank: Union[int, str] = "auto",
            routes: Optional[RouteSet] = None,
            coarse_routes: Optional[RouteSet] = None,
            coarse_conv_size: int = 7,
            channel_attention: bool = True,
            ffn_ratio: float = 2.0,
            ffn_drop: float = 0.0,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.2,
            norm_eps: float = 1e-5,
            device=None,
            dtype=None,
    ):
        nn.Module.__init__(self)  # VMamba's methods are reused; its constructor builds other blocks
        depths = tuple(depths)
        dims = tuple(int(dims) * 2 ** i for i in range(len(depths))) if isinstance(dims, int) else tuple(dims)
        if len(dims) != len(depths) or not depths:
            raise ValueError(f"need one width per stage: depths={depths}, dims={dims}")
        dd = dict(device=device, dtype=dtype)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.channels_last = True
        self.output_fmt = "NHWC"

        self.stem = PatchEmbed(in_chans, dims[0], patch_size=4, norm_eps=norm_eps, **dd)
        mixer_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, routes=routes,
                            coarse_routes=coarse_routes, coarse_conv_size=coarse_conv_size,
                            channel_attention=channel_attention)
        dp_rates = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        self.stages = nn.Sequential()
        self.feature_info = []
        prev_dim = dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            self.stages.append(MSVMambaStage(
                prev_dim, dim, depth, downsample=i > 0, drop_path=dp_rates[i], ffn_ratio=ffn_ratio,
                ffn_drop=ffn_drop, mixer_kwargs=mixer_kwargs, norm_eps=norm_eps, **dd))
            prev_dim = dim
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}"))

        self.num_features = self.head_hidden_size = dims[-1]
        self.norm = channel_norm(self.num_features, channels_last=True, eps=norm_eps, **dd)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt="NHWC", **dd)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The reference's: truncated normal for every nn.Linear, except the ConvFFN's pointwise layers, which
        are 1x1 convs there and keep PyTorch's default; convs default; the SSMs their own."""
        for m in self.modules():
            if isinstance(m, nn.Linear) and not m.weight.is_meta:
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, ConvFFN) and not m.fc1.weight.is_meta:
                m.fc1.reset_parameters()
                m.fc2.reset_parameters()


# ---------------------------------------------------------------------------------------------------------
# Official checkpoints

_BLOCK = r"^layers\.(\d+)\.blocks\.(\d+)\."
_OURS = r"stages.\1.blocks.\2."
# official module path -> ours (first match wins)
_KEY_RULES = (
    (r"^patch_embed\.0\.", "stem.proj."),
    (r"^patch_embed\.2\.", "stem.norm."),
    (_BLOCK + r"norm\.", _OURS + "norm1."),
    (_BLOCK + r"norm2\.", _OURS + "norm2."),
    (_BLOCK + r"op\.(in_proj|out_proj|out_norm)\.", _OURS + r"mixer.\3."),
    (_BLOCK + r"op\.conv2d\.", _OURS + "mixer.conv."),
    (_BLOCK + r"op\.conv2d_b1\.", _OURS + "mixer.conv_coarse."),
    (_BLOCK + r"op\.se\.fc\.0\.", _OURS + "mixer.se.fc1."),
    (_BLOCK + r"op\.se\.fc\.2\.", _OURS + "mixer.se.fc2."),
    (_BLOCK + r"convFFN\.linear1\.", _OURS + "mlp.fc1."),
    (_BLOCK + r"convFFN\.dwc\.", _OURS + "mlp.dw_conv."),
    (_BLOCK + r"convFFN\.linear2\.", _OURS + "mlp.fc2."),
    (r"^classifier\.norm\.", "norm."),
    (r"^classifier\.head\.", "head.fc."),
)
# the SSM tensors hold K = 1 + (fine routes) parameter sets: set 0 is the chained coarse branch
_SSM_TENSORS = {"x_proj_weight": "x_proj_weight", "dt_projs_weight": "dt_proj_weight",
                "dt_projs_bias": "dt_proj_bias", "A_logs": "A_log", "Ds": "D"}
# names of early VMamba-family checkpoints, as the reference renames them when loading
_OLD_NAMES = (
    (r"^patch_embed\.proj\.", "patch_embed.0."),
    (r"^patch_embed\.norm\.", "patch_embed.2."),
    (r"^(layers\.\d+\.blocks\.\d+)\.ln_1\.", r"\1.norm."),
    (r"^(layers\.\d+\.blocks\.\d+)\.self_attention\.", r"\1.op."),
    (r"^norm\.", "classifier.norm."),
    (r"^head\.", "classifier.head."),
)


def _unwrap(state_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    for key in ("model", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    return {re.sub(r"^(module\.)+", "", k): v for k, v in state_dict.items()}


def _split_ssm(ssm: Dict[tuple, torch.Tensor], ours: Dict[str, torch.Tensor], out: Dict[str, torch.Tensor],
               unknown: list) -> None:
    """op.<ssm tensor> holds K = 1 + (fine routes) parameter sets stacked, set 0 for the chained coarse
    branch: set 0 -> mixer.ssm_coarse.<name>, the rest -> mixer.ssm.<name>. A_logs / Ds are flat
    (K * d, N) / (K * d) in the reference and become (K, d, N) / (K, d)."""
    for (stage, block, src_name), value in ssm.items():
        prefix, name = f"stages.{stage}.blocks.{block}.mixer.", _SSM_TENSORS[src_name]
        coarse, fine = prefix + "ssm_coarse." + name, prefix + "ssm." + name
        if coarse not in ours or fine not in ours:
            unknown.append(f"layers.{stage}.blocks.{block}.op.{src_name}")
            continue
        if name in ("A_log", "D"):
            value = value.reshape(-1, *ours[coarse].shape[1:])
        out[coarse], out[fine] = value[:1], value[1:]


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: MSVMamba) -> Dict[str, torch.Tensor]:
    """Map an official MSVMamba state dict (the ``model`` entry of a released ``.pth``) onto ``model``.

    Raises ``ValueError`` listing any key it cannot place and any parameter left uncovered or misshapen, so
    nothing is silently dropped. A state dict already in this library's names is returned unchanged.
    """
    state_dict = _unwrap(state_dict)
    if any(k.startswith(("stem.", "stages.")) for k in state_dict):
        return state_dict
    ours = model.state_dict()
    out: Dict[str, torch.Tensor] = {}
    ssm: Dict[tuple, torch.Tensor] = {}
    unknown = []
    for src, value in state_dict.items():
        key = src
        for pattern, repl in _OLD_NAMES:
            key = re.sub(pattern, repl, key)
        new = None
        m_down = re.match(r"^layers\.(\d+)\.downsample\.(.+)$", key)
        m_ssm = re.match(_BLOCK + r"op\.(\w+)$", key)
        if m_down is not None:  # after stage i in the reference, before stage i + 1 here
            new = f"stages.{int(m_down.group(1)) + 1}.downsample.{m_down.group(2)}"
        elif m_ssm is not None and m_ssm.group(3) in _SSM_TENSORS:
            ssm[(int(m_ssm.group(1)), int(m_ssm.group(2)), m_ssm.group(3))] = value
            continue
        else:
            for pattern, repl in _KEY_RULES:
                candidate = re.sub(pattern, repl, key)
                if candidate != key:
                    new = candidate
                    break
        if new is None or new not in ours:
            if new is not None and new.startswith("head.fc.") and model.num_classes == 0:
                continue  # the classifier was removed on purpose (num_classes=0)
            unknown.append(src)
            continue
        if value.dim() == 4 and ours[new].dim() == 2:  # 1x1 conv weights -> (out, in)
            value = value.flatten(1)
        out[new] = value
    _split_ssm(ssm, ours, out, unknown)
    raise_if_incomplete(model, out, unknown, ours)
    return out


# ---------------------------------------------------------------------------------------------------------
# Configurations and registration

def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.proj", "classifier": "head.fc",
        "license": "mit", "paper_ids": "arXiv:2405.14174", "origin_url": "https://github.com/YuHengsss/MSVMamba",
        **kwargs,
    }


# the released weights are in Google Drive folders (see the reference README): no direct URL to give timm
default_cfgs = generate_default_cfgs({
    "msvmamba_nano.in1k": _cfg(),
    "msvmamba_micro.in1k": _cfg(),
    "msvmamba_tiny.in1k": _cfg(),
    "test_msvmamba": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
})


def _create_msvmamba(variant: str, pretrained: bool = False, **kwargs) -> MSVMamba:
    return build_model_with_cfg(
        MSVMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
        **kwargs,
    )


@register_model
def msvmamba_nano(pretrained: bool = False, **kwargs) -> MSVMamba:
    args = dict(depths=(1, 2, 5, 2), dims=48)
    return _create_msvmamba("msvmamba_nano", pretrained, **dict(args, **kwargs))


@register_model
def msvmamba_micro(pretrained: bool = False, **kwargs) -> MSVMamba:
    args = dict(depths=(1, 2, 5, 2), dims=64)
    return _create_msvmamba("msvmamba_micro", pretrained, **dict(args, **kwargs))


@register_model
def msvmamba_tiny(pretrained: bool = False, **kwargs) -> MSVMamba:
    args = dict(depths=(1, 2, 9, 2), dims=96)
    return _create_msvmamba("msvmamba_tiny", pretrained, **dict(args, **kwargs))


@register_model
def test_msvmamba(pretrained: bool = False, **kwargs) -> MSVMamba:
    """A small configuration for tests (timm's model tests run real forwards and backwards on CPU). The first
    width is not 16: at its 64 px input, a 16 x 16 x 16 map would look the same in NHWC and NCHW to timm."""
    args = dict(depths=(1, 1, 2, 1), dims=(24, 32, 48, 64), drop_path_rate=0.0)
    return _create_msvmamba("test_msvmamba", pretrained, **dict(args, **kwargs))
