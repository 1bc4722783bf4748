"""EfficientVMamba: atrous selective scan (ES2D) blocks with a convolution branch, then inverted residuals.

Paper: "EfficientVMamba: Atrous Selective Scan for Light Weight Visual Mamba" (Pei et al., 2024),
https://arxiv.org/abs/2403.09977. Reference code: https://github.com/TerryPei/EfficientVMamba
(classification/lib/models/mamba/efficient_mamba.py, the module tree of the released training logs).

Registered models: ``efficient_vmamba_tiny`` / ``_small`` / ``_base`` (dims 48 / 64 / 96, depths 2-2-4-2 /
2-2-4-2 / 2-2-9-2; the reference's small yaml says dims 96, but the released model and its log are dims 64).

- Stages 0 and 1: EfficientVSS blocks, ``x + drop_path(CA(ES2D(h)) + CA(conv_branch(h)))`` with
  ``h = norm1(x)``: ES2D is ``vssm.layers.SS2D`` over the four atrous routes of ``vssm.kernels.atrous2d``
  (stride-2 sub-grids, d_state 16, inner width 2x, SiLU gate), the conv branch a 3x3 depthwise conv, BN,
  GELU and a 1x1 conv, and CA one channel attention module (LayerNorm, squeeze 1/8, GELU) shared by both.
- Stages 2 and 3: MobileNetV2 inverted residuals (expansion 4, squeeze-excite 1/8, ReLU), timm's blocks.
- 4x4 patch embedding, 2x2 patch merging between stages.

Odd map sides: the reference zero-pads an odd side to even before the atrous scan, so its sub-grids are all
the same size and its routes also step through the padded cells (which carry no input but decay the state);
the outputs there are cropped. By default this implementation scans the true sub-grids (unequal sizes at odd
sides, no padded cells); ``atrous_pad_odd=True`` reproduces the reference exactly. At even sides (e.g. every
SSM stage of a 224 input) both are identical. On a map one cell high or wide the atrous routes that start at
offset 1 visit nothing and add nothing (the reference's padded scan gives the same there).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import partial
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, DropPath, calculate_drop_path_rates
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._efficientnet_blocks import InvertedResidual, SqueezeExcite

from vssm.kernels import RouteSet, atrous2d
from vssm.layers import SS2D, LayerNorm, PatchEmbed, PatchMerging, channel_norm
from vssm.layers.channel_attention import ChannelAttention

from .vmamba import VMamba
from ._checkpoint import raise_if_incomplete

__all__ = ["EfficientVMamba", "EfficientVSSBlock", "EfficientVMambaStage", "checkpoint_filter_fn"]


class EfficientVSSBlock(nn.Module):
    """Atrous SS2D and a local conv branch on the same normalised input, each scaled by one shared channel
    attention, summed, added to the input (channels-last maps)."""

    def __init__(self, dim: int, *, drop_path: float = 0.0, mixer_kwargs: Optional[Dict[str, Any]] = None,
                 norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.norm1 = channel_norm(dim, channels_last=True, eps=norm_eps, **dd)
        self.mixer = SS2D(dim, norm_eps=norm_eps, **(mixer_kwargs or {}), **dd)
        self.conv_branch = nn.Sequential(OrderedDict(
            dw_conv=nn.Conv2d(dim, dim, 3, padding=1, groups=dim, **dd),
            norm=nn.BatchNorm2d(dim, **dd),
            act=nn.GELU(),
            pw_conv=nn.Conv2d(dim, dim, 1, **dd),
        ))
        self.channel_attention = ChannelAttention(dim, 0.125, nn.GELU, bias=True,
                                                  norm_layer=partial(LayerNorm, eps=norm_eps), **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        y_ssm = self.mixer(h)
        y_conv = self.conv_branch(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(self.channel_attention(y_ssm) + self.channel_attention(y_conv))


class EfficientVMambaStage(nn.Module):
    """An optional 2x2 patch merging, then ``depth`` EfficientVSS blocks (``kind="ssm"``) or inverted
    residuals (``kind="conv"``, run channels-first inside the stage)."""

    def __init__(self, dim: int, dim_out: int, depth: int, *, kind: str = "ssm", downsample: bool = False,
                 drop_path: Sequence[float] = (), mixer_kwargs: Optional[Dict[str, Any]] = None,
                 ir_expansion: float = 4.0, ir_se_ratio: float = 0.125, norm_eps: float = 1e-5, device=None,
                 dtype=None):
        super().__init__()
        if kind not in ("ssm", "conv"):
            raise ValueError(f"EfficientVMambaStage kind must be 'ssm' or 'conv', got {kind!r}")
        dd = dict(device=device, dtype=dtype)
        self.grad_checkpointing = False
        self.channels_first_blocks = kind == "conv"
        self.downsample = PatchMerging(dim, dim_out, norm_eps=norm_eps, **dd) if downsample else nn.Identity()
        drop_path = list(drop_path) or [0.0] * depth
        if kind == "ssm":
            blocks = [EfficientVSSBlock(dim_out, drop_path=drop_path[j], mixer_kwargs=mixer_kwargs,
                                        norm_eps=norm_eps, **dd) for j in range(depth)]
        else:
            se_layer = partial(SqueezeExcite, rd_ratio=ir_se_ratio)
            blocks = [InvertedResidual(dim_out, dim_out, dw_kernel_size=3, exp_ratio=ir_expansion,
                                       act_layer=nn.ReLU, se_layer=se_layer, drop_path_rate=drop_path[j], **dd)
                      for j in range(depth)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.channels_first_blocks:
            x = x.permute(0, 3, 1, 2)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x.permute(0, 2, 3, 1) if self.channels_first_blocks else x


class EfficientVMamba(VMamba):
    """EfficientVMamba backbone and classifier, on (B, H, W, C) maps.

    Args:
        in_chans, num_classes, global_pool, drop_rate: as in every timm model.
        depths: blocks per stage.  dims: width per stage, or the first stage's width (doubled per stage).
        ssm_stages: how many leading stages use EfficientVSS blocks (the rest inverted residuals).
        d_state, ssm_ratio, dt_rank: the SSM of the atrous SS2D mixer.
        routes: the mixer's routes (default ``atrous2d()``).
        atrous_pad_odd: zero-pad odd sides to even before the scan, as the reference does (see the module
            docstring); off by default: the routes visit only the map's own cells.
        ir_expansion, ir_se_ratio: inverted residual expansion and squeeze-excite ratio.
        drop_path_rate: stochastic depth, rising linearly over all blocks from 0.
        norm_eps: eps of every LayerNorm.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            depths: Sequence[int] = (2, 2, 4, 2),
            dims: Union[int, Sequence[int]] = 48,
            ssm_stages: int = 2,
            d_state: int = 16,
            ssm_ratio: float = 2.0,
            dt_rank: Union[int, str] = "auto",
            routes: Optional[RouteSet] = None,
            atrous_pad_odd: bool = False,
            ir_expansion: float = 4.0,
            ir_se_ratio: float = 0.125,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.1,
            norm_eps: float = 1e-5,
            device=None,
            dtype=None,
    ):
        nn.Module.__init__(self)  # VMamba's methods are reused; its constructor builds other blocks
        depths = tuple(depths)
        dims = tuple(int(dims) * 2 ** i for i in range(len(depths))) if isinstance(dims, int) else tuple(dims)
        if len(dims) != len(depths) or not depths:
            raise ValueError(f"need one width per stage: depths={depths}, dims={dims}")
        if not 0 <= ssm_stages <= len(depths):
            raise ValueError(f"ssm_stages must be in 0..{len(depths)}, got {ssm_stages}")
        dd = dict(device=device, dtype=dtype)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.channels_last = True
        self.output_fmt = "NHWC"

        self.stem = PatchEmbed(in_chans, dims[0], patch_size=4, norm_eps=norm_eps, **dd)
        mixer_kwargs = dict(routes=atrous2d() if routes is None else routes, d_state=d_state, ssm_ratio=ssm_ratio,
                            dt_rank=dt_rank, gate=True, out_norm="layernorm", conv_size=3, conv_bias=True,
                            pad_to_multiple=2 if atrous_pad_odd else 1, skip_empty_routes=True)
        dp_rates = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        self.stages = nn.Sequential()
        self.feature_info = []
        prev_dim = dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            self.stages.append(EfficientVMambaStage(
                prev_dim, dim, depth, kind="ssm" if i < ssm_stages else "conv", downsample=i > 0,
                drop_path=dp_rates[i], mixer_kwargs=mixer_kwargs, ir_expansion=ir_expansion,
                ir_se_ratio=ir_se_ratio, norm_eps=norm_eps, **dd))
            prev_dim = dim
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}"))

        self.num_features = self.head_hidden_size = dims[-1]
        self.norm = channel_norm(self.num_features, channels_last=True, eps=norm_eps, **dd)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt="NHWC", **dd)
        self.apply(self._init_weights)  # the reference's: truncated normal for every nn.Linear, convs default


# ---------------------------------------------------------------------------------------------------------
# Official checkpoints

_BLOCK = r"^layers\.(\d+)\.blocks\.(\d+)\."
_OURS = r"stages.\1.blocks.\2."
_IR = r"^layers\.(\d+)\.(\d+)\."  # conv stages: layers.i.0 permute, .1 .. .depth blocks, then permute, merge
# official module path -> ours (first match wins)
_KEY_RULES = (
    (r"^patch_embed\.0\.", "stem.proj."),
    (r"^patch_embed\.2\.", "stem.norm."),
    (_BLOCK + r"norm\.", _OURS + "norm1."),
    (_BLOCK + r"op\.(in_proj|out_proj|out_norm)\.", _OURS + r"mixer.\3."),
    (_BLOCK + r"op\.conv2d\.", _OURS + "mixer.conv."),
    (_BLOCK + r"op\.x_proj_weight$", _OURS + "mixer.ssm.x_proj_weight"),
    (_BLOCK + r"op\.dt_projs_weight$", _OURS + "mixer.ssm.dt_proj_weight"),
    (_BLOCK + r"op\.dt_projs_bias$", _OURS + "mixer.ssm.dt_proj_bias"),
    (_BLOCK + r"op\.A_logs$", _OURS + "mixer.ssm.A_log"),
    (_BLOCK + r"op\.Ds$", _OURS + "mixer.ssm.D"),
    (_BLOCK + r"conv_branch\.0\.", _OURS + "conv_branch.dw_conv."),
    (_BLOCK + r"conv_branch\.1\.", _OURS + "conv_branch.norm."),
    (_BLOCK + r"conv_branch\.3\.", _OURS + "conv_branch.pw_conv."),
    (_BLOCK + r"se\.norm\.", _OURS + "channel_attention.norm."),
    (_BLOCK + r"se\.global_reduce\.", _OURS + "channel_attention.fc1."),
    (_BLOCK + r"se\.channel_select\.", _OURS + "channel_attention.fc2."),
    (r"^classifier\.norm\.", "norm."),
    (r"^classifier\.head\.", "head.fc."),
)
# official inverted residual names -> timm's
_IR_NAMES = (
    (r"^conv_pw\.0\.", "conv_pw."), (r"^conv_pw\.1\.", "bn1."),
    (r"^conv_dw\.0\.", "conv_dw."), (r"^conv_dw\.1\.", "bn2."),
    (r"^se\.(conv_reduce|conv_expand)\.", r"se.\1."),
    (r"^conv_pw2\.0\.", "conv_pwl."), (r"^conv_pw2\.1\.", "bn3."),
)


def _unwrap(state_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    for key in ("model", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    return {re.sub(r"^(module\.)+", "", k): v for k, v in state_dict.items()}


def _map_key(key: str) -> Optional[str]:
    m = re.match(r"^layers\.(\d+)\.downsample\.(.+)$", key)     # after SSM stage i -> before stage i + 1
    if m is not None:
        return f"stages.{int(m.group(1)) + 1}.downsample.{m.group(2)}"
    m = re.match(_IR + r"(reduction|norm)\.(.+)$", key)          # patch merging at the end of a conv stage
    if m is not None:
        return f"stages.{int(m.group(1)) + 1}.downsample.{m.group(3)}.{m.group(4)}"
    m = re.match(_IR + r"(.+)$", key)
    if m is not None:
        rest = m.group(3)
        for pattern, repl in _IR_NAMES:
            if re.match(pattern, rest):
                return f"stages.{m.group(1)}.blocks.{int(m.group(2)) - 1}.{re.sub(pattern, repl, rest)}"
        return None
    for pattern, repl in _KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: EfficientVMamba) -> Dict[str, torch.Tensor]:
    """Map an official EfficientVMamba state dict (``module.`` prefixes and a ``state_dict`` / ``model``
    wrapper are removed) onto ``model``.

    Raises ``ValueError`` listing any key it cannot place and any parameter or buffer left uncovered or
    misshapen, so nothing is silently dropped. A state dict already in this library's names is returned
    unchanged.
    """
    state_dict = _unwrap(state_dict)
    if any(k.startswith(("stem.", "stages.")) for k in state_dict):
        return state_dict
    ours = model.state_dict()
    out, unknown = {}, []
    for src, value in state_dict.items():
        new = _map_key(src)
        if new is None or new not in ours:
            if new is not None and new.startswith("head.fc.") and model.num_classes == 0:
                continue  # the classifier was removed on purpose (num_classes=0)
            unknown.append(src)
            continue
        if value.shape != ours[new].shape and value.numel() == ours[new].numel() and new.endswith((".A_log", ".D")):
            value = value.reshape(ours[new].shape)  # A_logs (K*d, N) -> (K, d, N); Ds (K*d,) -> (K, d)
        out[new] = value
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
        "license": "mit", "paper_ids": "arXiv:2403.09977", "origin_url": "https://github.com/TerryPei/EfficientVMamba",
        **kwargs,
    }


# the released weights are in the Hugging Face repos TerryPei/EfficientVMamba-{Tiny,Small,Base} in the
# reference's format: load them through checkpoint_filter_fn (no timm-format copy to point at)
default_cfgs = generate_default_cfgs({
    "efficient_vmamba_tiny.in1k": _cfg(),
    "efficient_vmamba_small.in1k": _cfg(),
    "efficient_vmamba_base.in1k": _cfg(),
    "test_efficient_vmamba": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
})


def _create_efficient_vmamba(variant: str, pretrained: bool = False, **kwargs) -> EfficientVMamba:
    return build_model_with_cfg(
        EfficientVMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
        **kwargs,
    )


@register_model
def efficient_vmamba_tiny(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    args = dict(depths=(2, 2, 4, 2), dims=48)
    return _create_efficient_vmamba("efficient_vmamba_tiny", pretrained, **dict(args, **kwargs))


@register_model
def efficient_vmamba_small(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    args = dict(depths=(2, 2, 4, 2), dims=64)
    return _create_efficient_vmamba("efficient_vmamba_small", pretrained, **dict(args, **kwargs))


@register_model
def efficient_vmamba_base(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    args = dict(depths=(2, 2, 9, 2), dims=96)
    return _create_efficient_vmamba("efficient_vmamba_base", pretrained, **dict(args, **kwargs))


@register_model
def test_efficient_vmamba(pretrained: bool = False, **kwargs) -> EfficientVMamba:
    """A small configuration for tests (timm's model tests run real forwards and backwards on CPU). The first
    width is not 16: at its 64 px input, a 16 x 16 x 16 map would look the same in NHWC and NCHW to timm."""
    args = dict(depths=(1, 1, 2, 1), dims=(24, 32, 48, 64), d_state=4, drop_path_rate=0.0)
    return _create_efficient_vmamba("test_efficient_vmamba", pretrained, **dict(args, **kwargs))
