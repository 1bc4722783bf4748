"""Checkpoint converters: official SegMamba / VM-UNet weights and VMamba v0 classification weights to ours.

Every converter returns ``(state_dict, report)``; the report lists the ``mapped`` source keys, the
``unmapped`` source keys (present in the checkpoint, with no place in our network) and, when a target network
is given, the ``missing`` target keys (left at their initial values). Nothing is dropped silently.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

import torch

__all__ = ["convert_segmamba_official", "convert_vmunet_official", "vmunet_init_from_vmamba_v0",
           "unwrap_checkpoint"]

# SegMamba's fork names the three routes' parameters with suffixes: forward "", backward "_b", inter-slice "_s".
_ROUTE_SUFFIXES = ("", "_b", "_s")


def unwrap_checkpoint(ckpt: Mapping) -> Mapping[str, torch.Tensor]:
    """The state dict inside a checkpoint saved as ``{"model": ...}``, ``{"state_dict": ...}`` or
    ``{"net": ...}``, or the checkpoint itself."""
    for key in ("model", "state_dict", "net", "network"):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            return ckpt[key]
    return ckpt


def _finish(out: dict, mapped: list, unmapped: list, target: Optional[torch.nn.Module]):
    report = {"mapped": mapped, "unmapped": unmapped, "missing": []}
    if target is not None:
        own = target.state_dict()
        report["missing"] = [k for k in own if k not in out]
        bad = [k for k, v in out.items() if k in own and own[k].shape != v.shape]
        if bad:
            raise ValueError(f"converted tensors do not fit the network: "
                             f"{[(k, tuple(out[k].shape), tuple(own[k].shape)) for k in bad[:5]]}")
        unknown = [k for k in out if k not in own]
        if unknown:
            raise ValueError(f"converted keys the network does not have: {unknown[:5]}")
    return out, report


def convert_segmamba_official(state_dict: Mapping[str, torch.Tensor], target: Optional[torch.nn.Module] = None):
    """Official SegMamba weights -> :class:`~vssm.medical.SegMamba`. Module names match except inside the
    Mamba layers, whose three routes' conv1d / x_proj / dt_proj / A_log / D are stacked along a route axis."""
    sd = unwrap_checkpoint(state_dict)
    out, mapped, unmapped = {}, [], []
    prefixes = sorted({k.split(".mamba.")[0] for k in sd if ".mamba." in k})
    for key, value in sd.items():
        if ".mamba." not in key:
            out[key] = value
            mapped.append(key)
    for prefix in prefixes:
        def get(name):
            key = f"{prefix}.mamba.{name}"
            mapped.append(key)
            return sd[key]

        mixer = f"{prefix}.mixer."
        out[mixer + "in_proj.weight"] = get("in_proj.weight")
        out[mixer + "out_proj.weight"] = get("out_proj.weight")
        for name in ("in_proj.bias", "out_proj.bias"):
            if f"{prefix}.mamba.{name}" in sd:
                out[mixer + name] = get(name)
        out[mixer + "conv_weight"] = torch.stack([get(f"conv1d{s}.weight")[:, 0] for s in _ROUTE_SUFFIXES])
        if f"{prefix}.mamba.conv1d.bias" in sd:
            out[mixer + "conv_bias"] = torch.stack([get(f"conv1d{s}.bias") for s in _ROUTE_SUFFIXES])
        out[mixer + "x_proj_weight"] = torch.stack([get(f"x_proj{s}.weight") for s in _ROUTE_SUFFIXES])
        out[mixer + "dt_proj_weight"] = torch.stack([get(f"dt_proj{s}.weight") for s in _ROUTE_SUFFIXES])
        out[mixer + "dt_proj_bias"] = torch.stack([get(f"dt_proj{s}.bias") for s in _ROUTE_SUFFIXES])
        out[mixer + "A_log"] = torch.stack([get(f"A{s}_log") for s in _ROUTE_SUFFIXES])
        out[mixer + "D"] = torch.stack([get(f"D{s}") for s in _ROUTE_SUFFIXES])
    done = set(mapped)
    unmapped = [k for k in sd if k not in done]
    return _finish(out, mapped, unmapped, target)


# --- VM-UNet ------------------------------------------------------------------------------------------------

def _vmunet_block_key(rest: str) -> Optional[str]:
    """A key inside one official VSS block (``ln_1...``, ``self_attention...``) -> ours, or None."""
    table = {
        "ln_1.weight": "norm1.weight", "ln_1.bias": "norm1.bias",
        "self_attention.in_proj.weight": "mixer.in_proj.weight",
        "self_attention.conv2d.weight": "mixer.conv.weight", "self_attention.conv2d.bias": "mixer.conv.bias",
        "self_attention.x_proj_weight": "mixer.ssm.x_proj_weight",
        "self_attention.dt_projs_weight": "mixer.ssm.dt_proj_weight",
        "self_attention.dt_projs_bias": "mixer.ssm.dt_proj_bias",
        "self_attention.A_logs": "mixer.ssm.A_log", "self_attention.Ds": "mixer.ssm.D",
        "self_attention.out_norm.weight": "mixer.out_norm.weight",
        "self_attention.out_norm.bias": "mixer.out_norm.bias",
        "self_attention.out_proj.weight": "mixer.out_proj.weight",
    }
    return table.get(rest)


def _vmunet_key(key: str) -> Optional[str]:
    """An official VM-UNet key (without the ``vmunet.`` prefix) -> ours, or None."""
    m = re.fullmatch(r"(layers|layers_up)\.(\d+)\.blocks\.(\d+)\.(.+)", key)
    if m:
        inner = _vmunet_block_key(m.group(4))
        side = "encoder" if m.group(1) == "layers" else "decoder"
        return None if inner is None else f"{side}.{m.group(2)}.blocks.{m.group(3)}.{inner}"
    m = re.fullmatch(r"layers\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)", key)
    if m:
        return f"encoder.{m.group(1)}.downsample.{m.group(2)}.{m.group(3)}"
    m = re.fullmatch(r"layers_up\.(\d+)\.upsample\.(expand|norm)\.(weight|bias)", key)
    if m:
        return f"decoder.{m.group(1)}.upsample.{m.group(2)}.{m.group(3)}"
    m = re.fullmatch(r"(patch_embed\.(?:proj|norm)|final_up\.(?:expand|norm)|final_conv)\.(weight|bias)", key)
    if m:
        return key.replace("final_up", "final_expand")
    return None


def _reshape_for(ours_key: str, value: torch.Tensor, target_sd: Optional[Mapping]) -> torch.Tensor:
    """Official VMamba v0 stores A_logs (K*d, N) and Ds (K*d,); ours are (K, d, N) and (K, d)."""
    if ours_key.endswith("ssm.A_log") and value.dim() == 2:
        K = target_sd[ours_key].shape[0] if target_sd is not None else 4
        return value.reshape(K, -1, value.shape[-1])
    if ours_key.endswith("ssm.D") and value.dim() == 1:
        K = target_sd[ours_key].shape[0] if target_sd is not None else 4
        return value.reshape(K, -1)
    return value


def convert_vmunet_official(state_dict: Mapping[str, torch.Tensor], target: Optional[torch.nn.Module] = None):
    """Official VM-UNet weights (keys ``vmunet.*`` as saved by its training script) -> ours."""
    sd = unwrap_checkpoint(state_dict)
    target_sd = target.state_dict() if target is not None else None
    out, mapped, unmapped = {}, [], []
    for key, value in sd.items():
        bare = key[len("vmunet."):] if key.startswith("vmunet.") else key
        ours = _vmunet_key(bare)
        if ours is None:
            unmapped.append(key)
            continue
        out[ours] = _reshape_for(ours, value, target_sd)
        mapped.append(key)
    return _finish(out, mapped, unmapped, target)


def vmunet_init_from_vmamba_v0(state_dict: Mapping[str, torch.Tensor], target: torch.nn.Module):
    """VM-UNet's initialisation from a VMamba v0 classification checkpoint (e.g. VMamba-S): the encoder
    takes stage i as is, the decoder stage ``3 - i`` takes encoder stage i's blocks (the mirror), as the
    official ``load_from`` does. Keys with no counterpart of the same shape (the classifier head, the extra
    blocks of deeper stages, the encoder's patch merging in the decoder) are reported as unmapped."""
    sd = unwrap_checkpoint(state_dict)
    target_sd = target.state_dict()
    num_stages = len(target.encoder)
    out, mapped, unmapped = {}, [], []

    def place(src_key, official_key):
        ours = _vmunet_key(official_key)
        if ours is None or ours not in target_sd:
            return False
        value = _reshape_for(ours, sd[src_key], target_sd)
        if value.shape != target_sd[ours].shape:
            return False
        out[ours] = value
        return True

    for key in sd:
        placed = place(key, key)
        m = re.fullmatch(r"layers\.(\d+)\.(blocks\..+)", key)
        if m:  # the mirror: encoder stage i -> decoder stage (num_stages - 1 - i)
            placed = place(key, f"layers_up.{num_stages - 1 - int(m.group(1))}.{m.group(2)}") or placed
        (mapped if placed else unmapped).append(key)
    return _finish(out, mapped, unmapped, target)
