"""The parameter names and shapes of the official VMamba module tree (MzeroMiko/VMamba,
classification/models/vmamba.py, class VSSM), written out from that code for the checkpoint tests.

v2 models (forward type "v05_noz", ``norm_layer="ln2d"``): patch embed "v2", downsample "v3", no z gate,
depthwise conv without bias, MLP. v0 models (forward type "v0"): patch embed "v1", patch-merging
downsample "v1", z gate, conv with bias, no MLP. ``old_names=True`` gives the names of the first v0
releases (``patch_embed.proj``, ``ln_1``, ``self_attention``, top-level ``norm`` / ``head``).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

Shapes = Dict[str, Tuple[int, ...]]


def official_shapes(version: str, depths: Sequence[int], dims: Sequence[int], d_state: int, ssm_ratio: float,
                    num_classes: int = 1000, mlp_ratio: float = 4.0, in_chans: int = 3,
                    old_names: bool = False) -> Shapes:
    if version not in ("v0", "v2"):
        raise ValueError(version)
    v2 = version == "v2"
    out: Shapes = {}
    d0 = dims[0]
    if v2:
        out["patch_embed.0.weight"] = (d0 // 2, in_chans, 3, 3)
        out["patch_embed.0.bias"] = (d0 // 2,)
        out["patch_embed.2.weight"] = out["patch_embed.2.bias"] = (d0 // 2,)
        out["patch_embed.5.weight"] = (d0, d0 // 2, 3, 3)
        out["patch_embed.5.bias"] = (d0,)
        out["patch_embed.7.weight"] = out["patch_embed.7.bias"] = (d0,)
    else:
        embed, norm = ("patch_embed.proj", "patch_embed.norm") if old_names else ("patch_embed.0", "patch_embed.2")
        out[f"{embed}.weight"] = (d0, in_chans, 4, 4)
        out[f"{embed}.bias"] = (d0,)
        out[f"{norm}.weight"] = out[f"{norm}.bias"] = (d0,)
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        di = int(ssm_ratio * dim)
        R = math.ceil(dim / 16)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            norm, op = (p + "ln_1.", p + "self_attention.") if old_names else (p + "norm.", p + "op.")
            out[norm + "weight"] = out[norm + "bias"] = (dim,)
            out[op + "in_proj.weight"] = (di if v2 else 2 * di, dim)
            out[op + "conv2d.weight"] = (di, 1, 3, 3)
            if not v2:
                out[op + "conv2d.bias"] = (di,)
            out[op + "x_proj_weight"] = (4, R + 2 * d_state, di)
            out[op + "A_logs"] = (4 * di, d_state)
            out[op + "Ds"] = (4 * di,)
            out[op + "dt_projs_weight"] = (4, di, R)
            out[op + "dt_projs_bias"] = (4, di)
            out[op + "out_norm.weight"] = out[op + "out_norm.bias"] = (di,)
            out[op + "out_proj.weight"] = (dim, di)
            if v2:
                hidden = int(dim * mlp_ratio)
                out[p + "norm2.weight"] = out[p + "norm2.bias"] = (dim,)
                out[p + "mlp.fc1.weight"] = (hidden, dim)
                out[p + "mlp.fc1.bias"] = (hidden,)
                out[p + "mlp.fc2.weight"] = (dim, hidden)
                out[p + "mlp.fc2.bias"] = (dim,)
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample."
            if v2:
                out[p + "1.weight"] = (dims[i + 1], dim, 3, 3)
                out[p + "1.bias"] = (dims[i + 1],)
                out[p + "3.weight"] = out[p + "3.bias"] = (dims[i + 1],)
            else:
                out[p + "norm.weight"] = out[p + "norm.bias"] = (4 * dim,)
                out[p + "reduction.weight"] = (dims[i + 1], 4 * dim)
    norm, head = ("norm", "head") if old_names else ("classifier.norm", "classifier.head")
    out[f"{norm}.weight"] = out[f"{norm}.bias"] = (dims[-1],)
    out[f"{head}.weight"] = (num_classes, dims[-1])
    out[f"{head}.bias"] = (num_classes,)
    return out


# the registered models as official configurations (depths, dims, d_state, ssm_ratio)
OFFICIAL_CONFIGS = {
    "vmamba_tiny": ("v2", (2, 2, 8, 2), (96, 192, 384, 768), 1, 1.0),
    "vmamba_small": ("v2", (2, 2, 15, 2), (96, 192, 384, 768), 1, 2.0),
    "vmamba_base": ("v2", (2, 2, 15, 2), (128, 256, 512, 1024), 1, 2.0),
    "vmamba_tiny_v0": ("v0", (2, 2, 9, 2), (96, 192, 384, 768), 16, 2.0),
    "vmamba_small_v0": ("v0", (2, 2, 27, 2), (96, 192, 384, 768), 16, 2.0),
    "vmamba_base_v0": ("v0", (2, 2, 27, 2), (128, 256, 512, 1024), 16, 2.0),
    "test_vmamba": ("v2", (1, 1, 2, 1), (24, 32, 48, 64), 1, 1.0),
    "test_vmamba_v0": ("v0", (1, 1, 2, 1), (24, 32, 48, 64), 4, 2.0),
}


def official_shapes_for(name: str, num_classes: int = 1000, old_names: bool = False) -> Shapes:
    version, depths, dims, d_state, ssm_ratio = OFFICIAL_CONFIGS[name]
    return official_shapes(version, depths, dims, d_state, ssm_ratio, num_classes=num_classes, old_names=old_names)
