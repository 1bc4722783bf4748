"""VMamba: visual state space models with a 2-D selective scan (SS2D) along four cross routes.

Paper: "VMamba: Visual State Space Model" (Liu et al., NeurIPS 2024), https://arxiv.org/abs/2401.10166.
Reference code: https://github.com/MzeroMiko/VMamba (classification/models/vmamba.py).

Registered models (timm names; the official configuration names in brackets):

- ``vmamba_tiny`` / ``vmamba_small`` / ``vmamba_base``: the released v2 models ["s1l8", "s2l15", "s2l15"]:
  d_state 1, no gate, LayerNorm out-norm, 3x3 depthwise conv without bias, conv stem, 3x3 stride-2 conv
  downsampling, an MLP in every block.
- ``vmamba_tiny_v0`` / ``vmamba_small_v0`` / ``vmamba_base_v0``: the original ("vanilla") models: d_state 16,
  SiLU gate, conv bias, 4x4 patch embedding, patch merging, no MLP.

The layers live in ``vssm.layers``; this file wires them into stages and a timm model, and maps official
checkpoints onto it (``checkpoint_filter_fn``). The internal layout is (B, H, W, C) by default
(``channels_last=True``: LayerNorms and projections run on the contiguous channel axis, and the scan kernel
reads routes of channel vectors); ``channels_last=False`` runs the same weights in (B, C, H, W).
"""

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, calculate_drop_path_rates, get_act_layer, get_device_dtype, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from vssm.layers import ConvDownsample, ConvStem, PatchEmbed, PatchMerging, VSSBlock, channel_norm
from vssm.layers.ss2d import OUT_NORMS
from vssm.models._checkpoint import raise_if_incomplete

__all__ = ["VMamba", "VMambaStage", "checkpoint_filter_fn"]

STEMS = ("patch", "conv")                      # PatchEmbed (v1), ConvStem (v2)
DOWNSAMPLES = ("merge", "conv2x2", "conv3x3")  # PatchMerging (v1), ConvDownsample k2 (v2) / k3 (v3)


def _make_downsample(kind: str, dim: int, out_dim: int, **kwargs) -> nn.Module:
    if kind == "merge":
        return PatchMerging(dim, out_dim, **kwargs)
    return ConvDownsample(dim, out_dim, kernel_size=2 if kind == "conv2x2" else 3, **kwargs)


class VMambaStage(nn.Module):
    """An optional stride-2 downsample (dim -> dim_out), then ``depth`` VSS blocks of width dim_out."""

    def __init__(self, dim: int, dim_out: int, depth: int, *, downsample: Optional[str] = None,
                 drop_path: Sequence[float] = (), mlp_ratio: float = 4.0, mlp_act_layer: type = nn.GELU,
                 mixer_kwargs: Optional[Dict[str, Any]] = None, norm_eps: float = 1e-5, channels_last: bool = True,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        layout = dict(channels_last=channels_last, norm_eps=norm_eps)
        self.grad_checkpointing = False
        self.downsample = (_make_downsample(downsample, dim, dim_out, **layout, **dd) if downsample
                           else nn.Identity())
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            VSSBlock(dim_out, drop_path=drop_path[j], mlp_ratio=mlp_ratio, mlp_act_layer=mlp_act_layer,
                     mixer_kwargs=mixer_kwargs, **layout, **dd)
            for j in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class VMamba(nn.Module):
    """VMamba backbone and classifier.

    Args:
        in_chans, num_classes, global_pool, drop_rate: as in every timm model.
        depths: blocks per stage.  dims: width per stage, or the first stage's width (doubled per stage).
        d_state, ssm_ratio, dt_rank, gate, out_norm, conv_size, conv_bias, ssm_act_layer: the SS2D mixer
            (see ``vssm.layers.SS2D``).
        mlp_ratio: MLP hidden width / block width; 0 for blocks without an MLP.  mlp_act_layer: its activation.
        stem: "patch" (4x4 stride-4 conv + norm) or "conv" (two 3x3 stride-2 convs).
        downsample: between stages, "merge" (2x2 patch merging), "conv2x2" or "conv3x3" (stride-2 conv + norm).
        drop_path_rate: stochastic depth, rising linearly over all blocks from 0.
        norm_eps: eps of every LayerNorm.
        channels_last: internal layout (B, H, W, C) if True, else (B, C, H, W); features come out in it.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            depths: Sequence[int] = (2, 2, 9, 2),
            dims: Union[int, Sequence[int]] = 96,
            d_state: int = 16,
            ssm_ratio: float = 2.0,
            dt_rank: Union[int, str] = "auto",
            gate: bool = True,
            out_norm: str = "layernorm",
            conv_size: int = 3,
            conv_bias: bool = True,
            ssm_act_layer: Union[str, type] = "silu",
            mlp_ratio: float = 4.0,
            mlp_act_layer: Union[str, type] = "gelu",
            stem: str = "patch",
            downsample: str = "merge",
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.1,
            norm_eps: float = 1e-5,
            channels_last: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        if out_norm not in OUT_NORMS:
            raise ValueError(f"out_norm must be one of {OUT_NORMS}, got {out_norm!r}")
        depths = tuple(depths)
        dims = tuple(int(dims) * 2 ** i for i in range(len(depths))) if isinstance(dims, int) else tuple(dims)
        if len(dims) != len(depths) or not depths:
            raise ValueError(f"need one width per stage: depths={depths}, dims={dims}")
        dd = dict(device=device, dtype=dtype)
        layout = dict(channels_last=channels_last, norm_eps=norm_eps)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.channels_last = channels_last
        self.output_fmt = "NHWC" if channels_last else "NCHW"

        if stem == "patch":
            self.stem = PatchEmbed(in_chans, dims[0], patch_size=4, **layout, **dd)
        else:
            self.stem = ConvStem(in_chans, dims[0], **layout, **dd)

        mixer_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, gate=gate, out_norm=out_norm,
                            conv_size=conv_size, conv_bias=conv_bias, act_layer=get_act_layer(ssm_act_layer))
        dp_rates = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        self.stages = nn.Sequential()
        self.feature_info = []
        prev_dim = dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            self.stages.append(VMambaStage(
                prev_dim, dim, depth, downsample=downsample if i > 0 else None, drop_path=dp_rates[i],
                mlp_ratio=mlp_ratio, mlp_act_layer=get_act_layer(mlp_act_layer), mixer_kwargs=mixer_kwargs,
                **layout, **dd))
            prev_dim = dim
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}"))

        self.num_features = self.head_hidden_size = dims[-1]
        self.norm = channel_norm(self.num_features, channels_last=channels_last, eps=norm_eps, **dd)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt=self.output_fmt, **dd)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # as the reference: truncated normal for every Linear (also the 1x1 projections and the head),
        # PyTorch defaults for convs, and the SSM parameters keep RoutedSSM's own initialisation
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        """The SSM's A_log and D (decay rates and skip), as in the reference; norms and biases are 1-D and
        excluded by timm's optimizer factory anyway."""
        return {n for n, _ in self.named_parameters() if n.endswith((".A_log", ".D"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool, in_features=self.num_features,
                        **get_device_dtype(self))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (strides 4, 8, 16, 32) as well as the final features.

        Args:
            x: input images (B, C, H, W).
            indices: take the last n stages if an int, all if None, the listed stages if a sequence.
            norm: apply the final norm to the last stage's output (the only one it is sized for).
            stop_early: stop after the last stage asked for.
            output_fmt: "NCHW" or "NHWC" for the intermediates.
            intermediates_only: return only the intermediates.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        num_stages = len(self.stages)
        permute = (output_fmt == "NCHW") == self.channels_last
        x = self.stem(x)
        if torch.jit.is_scripting() or not stop_early:  # no slicing of Sequential in TorchScript
            stages = self.stages
        else:
            stages = self.stages[:max_index + 1]
        i = 0
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                x_inter = self.norm(x) if norm and i == num_stages - 1 else x
                if permute:
                    x_inter = (x_inter.permute(0, 3, 1, 2) if self.channels_last
                               else x_inter.permute(0, 2, 3, 1)).contiguous()
                intermediates.append(x_inter)
        if intermediates_only:
            return intermediates
        if i == num_stages - 1:
            x = self.norm(x)  # the final norm is sized for (and only applied to) the last stage
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the stages after the last one in ``indices`` (and the norm / head as asked)."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        self.stages = self.stages[:max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------------------
# Official checkpoints

# official module path -> ours, applied in order to every key (after the old v0 names are updated)
_KEY_RULES = (
    (r"^patch_embed\.0\.", "stem.{stem0}."),
    (r"^patch_embed\.2\.", "stem.{stem2}."),
    (r"^patch_embed\.5\.", "stem.conv2."),
    (r"^patch_embed\.7\.", "stem.norm2."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm\.", r"stages.\1.blocks.\2.norm1."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm2\.", r"stages.\1.blocks.\2.norm2."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.mlp\.", r"stages.\1.blocks.\2.mlp."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.conv2d\.", r"stages.\1.blocks.\2.mixer.conv."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.(in_proj|out_proj|out_norm)\.", r"stages.\1.blocks.\2.mixer.\3."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.x_proj_weight$", r"stages.\1.blocks.\2.mixer.ssm.x_proj_weight"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.dt_projs_weight$", r"stages.\1.blocks.\2.mixer.ssm.dt_proj_weight"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.dt_projs_bias$", r"stages.\1.blocks.\2.mixer.ssm.dt_proj_bias"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.A_logs$", r"stages.\1.blocks.\2.mixer.ssm.A_log"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.Ds$", r"stages.\1.blocks.\2.mixer.ssm.D"),
    (r"^classifier\.norm\.", "norm."),
    (r"^classifier\.head\.", "head.fc."),
)
# names of the first released v0 checkpoints, as the reference renames them when loading
_OLD_NAMES = (
    (r"^patch_embed\.proj\.", "patch_embed.0."),
    (r"^patch_embed\.norm\.", "patch_embed.2."),
    (r"^(layers\.\d+\.blocks\.\d+)\.ln_1\.", r"\1.norm."),
    (r"^(layers\.\d+\.blocks\.\d+)\.self_attention\.", r"\1.op."),
    (r"^norm\.", "classifier.norm."),
    (r"^head\.", "classifier.head."),
)


def _downsample_key(key: str) -> Optional[str]:
    """layers.i.downsample.* (after stage i in the reference) -> stages.(i+1).downsample.* (ours, before)."""
    m = re.match(r"^layers\.(\d+)\.downsample\.(.+)$", key)
    if m is None:
        return None
    stage, rest = int(m.group(1)) + 1, m.group(2)
    rest = re.sub(r"^1\.", "conv.", rest)   # Sequential(permute, conv, permute, norm)
    rest = re.sub(r"^3\.", "norm.", rest)
    return f"stages.{stage}.downsample.{rest}"


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: VMamba) -> Dict[str, torch.Tensor]:
    """Map an official VMamba state dict (v0 or v2 names, the ``model`` entry of a released ``.pth``) onto
    ``model``. Raises ``ValueError`` listing any key it cannot place and any parameter left uncovered, so
    nothing is silently dropped. A state dict already in this library's names is returned unchanged.
    """
    if "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    if any(k.startswith(("stem.", "stages.")) for k in state_dict):
        return state_dict
    ours = model.state_dict()
    stem_names = dict(stem0="proj", stem2="norm") if isinstance(model.stem, PatchEmbed) else dict(
        stem0="conv1", stem2="norm1")
    out, unknown = {}, []
    for key, value in state_dict.items():
        src = key
        for pattern, repl in _OLD_NAMES:
            key = re.sub(pattern, repl, key)
        new = _downsample_key(key)
        if new is None:
            for pattern, repl in _KEY_RULES:
                new_key = re.sub(pattern, repl.format(**stem_names) if "{" in repl else repl, key)
                if new_key != key:
                    new = new_key
                    break
        if new is None or new not in ours:
            if new is not None and new.startswith("head.fc.") and model.num_classes == 0:
                continue  # the classifier was removed on purpose (num_classes=0)
            unknown.append(src)
            continue
        if value.dim() == 4 and ours[new].dim() == 2:  # 1x1 conv weights of channels-first exports
            value = value.flatten(1)
        if value.shape != ours[new].shape and value.numel() == ours[new].numel() and not new.startswith("head."):
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
        "first_conv": "stem.conv1", "classifier": "head.fc",
        "license": "mit", "paper_ids": "arXiv:2401.10166", "origin_url": "https://github.com/MzeroMiko/VMamba",
        **kwargs,
    }


_RELEASES = "https://github.com/MzeroMiko/VMamba/releases/download/"
default_cfgs = generate_default_cfgs({
    "vmamba_tiny.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"),
    "vmamba_small.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth"),
    "vmamba_base.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth"),
    "vmamba_tiny_v0.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth",
                                first_conv="stem.proj"),
    "vmamba_small_v0.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmsmall_dp03_ckpt_epoch_238.pth",
                                 first_conv="stem.proj"),
    "vmamba_base_v0.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmbase_dp06_ckpt_epoch_241.pth",
                                first_conv="stem.proj"),
    # small configurations for tests (as timm's own test_* models): every code path, little compute
    "test_vmamba": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
    "test_vmamba_v0": _cfg(input_size=(3, 64, 64), pool_size=(2, 2), first_conv="stem.proj"),
})

# the released v2 models: no gate, d_state 1, MLP in every block, conv stem and 3x3 conv downsampling
_V2 = dict(d_state=1, gate=False, out_norm="layernorm", conv_bias=False, mlp_ratio=4.0, stem="conv",
           downsample="conv3x3")
# the original models: SiLU gate, d_state 16, conv bias, no MLP, patch embedding and patch merging
_V0 = dict(d_state=16, ssm_ratio=2.0, gate=True, out_norm="layernorm", conv_bias=True, mlp_ratio=0.0,
           stem="patch", downsample="merge")


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    return build_model_with_cfg(
        VMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
        **kwargs,
    )


@register_model
def vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 8, 2), dims=96, ssm_ratio=1.0, drop_path_rate=0.2)
    return _create_vmamba("vmamba_tiny", pretrained, **dict(args, **kwargs))


@register_model
def vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 15, 2), dims=96, ssm_ratio=2.0, drop_path_rate=0.3)
    return _create_vmamba("vmamba_small", pretrained, **dict(args, **kwargs))


@register_model
def vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 15, 2), dims=128, ssm_ratio=2.0, drop_path_rate=0.6)
    return _create_vmamba("vmamba_base", pretrained, **dict(args, **kwargs))


@register_model
def vmamba_tiny_v0(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(2, 2, 9, 2), dims=96, drop_path_rate=0.2)
    return _create_vmamba("vmamba_tiny_v0", pretrained, **dict(args, **kwargs))


@register_model
def vmamba_small_v0(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(2, 2, 27, 2), dims=96, drop_path_rate=0.3)
    return _create_vmamba("vmamba_small_v0", pretrained, **dict(args, **kwargs))


@register_model
def vmamba_base_v0(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(2, 2, 27, 2), dims=128, drop_path_rate=0.6)
    return _create_vmamba("vmamba_base_v0", pretrained, **dict(args, **kwargs))


@register_model
def test_vmamba(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(1, 1, 2, 1), dims=(24, 32, 48, 64), ssm_ratio=1.0, drop_path_rate=0.0)
    return _create_vmamba("test_vmamba", pretrained, **dict(args, **kwargs))


@register_model
def test_vmamba_v0(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(1, 1, 2, 1), dims=(24, 32, 48, 64), d_state=4, drop_path_rate=0.0)
    return _create_vmamba("test_vmamba_v0", pretrained, **dict(args, **kwargs))
