"""``type='MM_VSSM'`` / ``type='MM_EfficientVSSM'``: the official VMamba and EfficientVMamba detection /
segmentation configs run unchanged on our VMamba / EfficientVMamba.

The official configs inherit the Swin configs without ``_delete_``, so the merged backbone dict also carries
Swin's keys and an ``init_cfg`` pointing at Swin's ImageNet weights. The official wrapper ignores them
silently; we ignore exactly those keys, say so once in the log, and never fetch the Swin weights. Official
arguments we do not build (other scan types, gated MLP, BN norms, ...) raise a ValueError naming them.
"""

from __future__ import annotations

import re

from mmengine.logging import MMLogger

from .backbones import EfficientVMamba, VMamba
from .registry import register_backbone

# keys of mmdet's / mmseg's SwinTransformer that reach MM_VSSM through the inherited Swin configs
SWIN_KEYS = frozenset({
    "embed_dims", "num_heads", "window_size", "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate",
    "patch_norm", "convert_weights", "init_cfg", "pretrain_img_size", "strides", "use_abs_pos_embed",
    "act_cfg", "norm_cfg",
})

_DOWNSAMPLE = {"v1": "merge", "v2": "conv2x2", "v3": "conv3x3"}
_STEM = {"v1": "patch", "v2": "conv"}
# official SS2D forward types computing the 4-route cross scan we build; '_no32' only changes precision
_CROSS_SCAN = re.compile(r"^(v01|v02|v03|v04|v05|v2|v3)(_no32)?(_noz)?(_no32)?$")


def _mixer_options(forward_type: str) -> dict:
    if forward_type == "v0":
        return dict(gate=True)
    m = _CROSS_SCAN.match(forward_type)
    if m is None:
        raise ValueError(
            f"MM_VSSM: forward_type={forward_type!r} is not built here; supported: 'v0' and the 4-route cross "
            "scans v01/v02/v03/v04/v05/v2/v3, optionally with '_noz' (no gate)")
    return dict(gate=m.group(3) is None)


@register_backbone(name="MM_VSSM")
class OfficialVSSM(VMamba):
    """Accepts the official ``MM_VSSM`` constructor arguments and maps them onto :class:`VMamba`."""

    def __init__(self, out_indices=(0, 1, 2, 3), pretrained=None, norm_layer="ln", dims=96, depths=(2, 2, 9, 2),
                 ssm_d_state=16, ssm_ratio=2.0, ssm_dt_rank="auto", ssm_act_layer="silu", ssm_conv=3,
                 ssm_conv_bias=True, ssm_drop_rate=0.0, ssm_init="v0", forward_type="v2", mlp_ratio=4.0,
                 mlp_act_layer="gelu", mlp_drop_rate=0.0, gmlp=False, drop_path_rate=0.1,
                 downsample_version="v2", patchembed_version="v1", use_checkpoint=False, with_cp=False,
                 frozen_stages=-1, patch_size=4, in_chans=3, num_classes=1000, posembed=False, imgsize=224,
                 **swin_keys):
        unknown = sorted(set(swin_keys) - SWIN_KEYS)
        msvmamba = sorted(set(unknown) & {"sscore_type", "convFFN", "add_se", "ms_stage", "ms_split", "ffn_dropout"})
        if msvmamba:
            raise ValueError(f"MM_VSSM: {msvmamba} are MSVMamba arguments; use type='MSVMamba' with "
                             "arch='nano' / 'micro' / 'tiny' (configs/mmdet/msvmamba/)")
        if unknown:
            raise ValueError(f"MM_VSSM: unknown arguments {unknown}")
        init_cfg = swin_keys.get("init_cfg")
        if init_cfg and "swin" not in str(init_cfg.get("checkpoint", "")).lower():
            raise ValueError("MM_VSSM takes its weights from pretrained=...; for init_cfg use type='VMamba'")
        problems = []
        if str(norm_layer).lower() not in ("ln", "ln2d"):
            problems.append(f"norm_layer={norm_layer!r} (only 'ln' / 'ln2d')")
        if downsample_version not in _DOWNSAMPLE:
            problems.append(f"downsample_version={downsample_version!r} (only {sorted(_DOWNSAMPLE)})")
        if patchembed_version not in _STEM:
            problems.append(f"patchembed_version={patchembed_version!r} (only {sorted(_STEM)})")
        for name, value, ok in (("gmlp", gmlp, False), ("posembed", posembed, False), ("patch_size", patch_size, 4),
                                ("ssm_drop_rate", ssm_drop_rate, 0.0), ("mlp_drop_rate", mlp_drop_rate, 0.0)):
            if value != ok:
                problems.append(f"{name}={value!r} (only {ok!r})")
        if problems:
            raise ValueError("MM_VSSM: options not built here: " + "; ".join(problems))
        model_kwargs = dict(
            d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank, ssm_act_layer=ssm_act_layer,
            conv_size=ssm_conv, conv_bias=ssm_conv_bias, mlp_ratio=mlp_ratio, mlp_act_layer=mlp_act_layer,
            stem=_STEM[patchembed_version], downsample=_DOWNSAMPLE[downsample_version], in_chans=in_chans,
            channels_last=str(norm_layer).lower() == "ln", **_mixer_options(forward_type))
        super().__init__(arch="tiny", depths=depths, dims=dims, model_kwargs=model_kwargs,
                         out_indices=out_indices, frozen_stages=frozen_stages, drop_path_rate=drop_path_rate,
                         with_cp=with_cp or use_checkpoint, pretrained=pretrained or None)
        ignored = sorted(swin_keys) + [k for k, v in (("num_classes", num_classes), ("imgsize", imgsize),
                                                      ("ssm_init", ssm_init)) if v is not None]
        MMLogger.get_current_instance().info(
            "MM_VSSM: ignoring Swin / classification-only arguments (as the official wrapper does): "
            + ", ".join(ignored))


@register_backbone(name="MM_EfficientVSSM")
class OfficialEfficientVSSM(EfficientVMamba):
    """Accepts the official ``MM_EfficientVSSM`` arguments (EfficientVMamba's detection configs) and maps them
    onto :class:`EfficientVMamba`.

    What the official backbone builds, whatever its configs say: stages 0-1 atrous SS2D blocks and stages 2-3
    inverted residuals, a 4x4 patch embedding (``patchembed_version`` is not read), and d_state 16 with dt rank
    'auto' (``ssm_d_state`` / ``ssm_dt_rank`` / ``d_state`` / ``dt_rank`` never reach its blocks). Those keys are
    therefore accepted only at the values the official model has, so a config asking for something else fails
    here instead of silently building another model (other widths: ``type='EfficientVMamba'`` with
    ``model_kwargs``). ``window_size`` is Swin's key (the configs set it to 2; the atrous step is ``step_size``).
    The published configs set ``mlp_ratio=0.0`` and ``downsample_version='v1'`` (patch merging); the official
    defaults (4.0, 'v2') are not built here and raise.
    """

    def __init__(self, out_indices=(0, 1, 2, 3), pretrained=None, norm_layer="ln", depths=(2, 2, 9, 2),
                 dims=(96, 192, 384, 768), ssm_d_state=16, ssm_dt_rank="auto", d_state=16, dt_rank="auto",
                 ssm_ratio=2.0, mlp_ratio=4.0, downsample_version="v2", patchembed_version="v1", step_size=2,
                 drop_path_rate=0.1, use_checkpoint=False, with_cp=False, frozen_stages=-1, patch_size=4,
                 in_chans=3, num_classes=1000, **swin_keys):
        unknown = sorted(set(swin_keys) - SWIN_KEYS)
        if unknown:
            raise ValueError(f"MM_EfficientVSSM: unknown arguments {unknown}")
        init_cfg = swin_keys.get("init_cfg")
        if init_cfg and "swin" not in str(init_cfg.get("checkpoint", "")).lower():
            raise ValueError("MM_EfficientVSSM takes its weights from pretrained=...; for init_cfg use "
                             "type='EfficientVMamba'")
        problems = []
        norm_name = norm_layer if isinstance(norm_layer, str) else getattr(norm_layer, "__name__", str(norm_layer))
        if str(norm_name).lower() not in ("ln", "layernorm"):
            problems.append(f"norm_layer={norm_layer!r} (only LayerNorm)")
        for name, value, ok in (("ssm_d_state", ssm_d_state, 16), ("d_state", d_state, 16),
                                ("ssm_dt_rank", ssm_dt_rank, "auto"), ("dt_rank", dt_rank, "auto"),
                                ("mlp_ratio", mlp_ratio, 0.0), ("downsample_version", downsample_version, "v1"),
                                ("patchembed_version", patchembed_version, "v1"), ("step_size", step_size, 2),
                                ("patch_size", patch_size, 4)):
            if value != ok:
                problems.append(f"{name}={value!r} (only {ok!r})")
        if problems:
            raise ValueError("MM_EfficientVSSM: options not built here (the official backbone builds d_state 16, "
                             "dt rank 'auto', no MLP, patch merging, 4x4 patch embedding, atrous step 2): "
                             + "; ".join(problems))
        super().__init__(arch="tiny", depths=depths, dims=dims,
                         model_kwargs=dict(d_state=16, dt_rank="auto", ssm_ratio=ssm_ratio, in_chans=in_chans),
                         out_indices=out_indices, frozen_stages=frozen_stages, drop_path_rate=drop_path_rate,
                         with_cp=with_cp or use_checkpoint, pretrained=pretrained or None)
        ignored = sorted(swin_keys) + (["num_classes"] if num_classes is not None else [])
        MMLogger.get_current_instance().info(
            "MM_EfficientVSSM: ignoring Swin / classification-only arguments (as the official wrapper does): "
            + ", ".join(ignored))
