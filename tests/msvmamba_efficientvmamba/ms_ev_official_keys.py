"""Parameter (and buffer) names and shapes of the official MSVMamba and EfficientVMamba module trees, written
out from their code for the checkpoint tests.

MSVMamba: YuHengsss/MSVMamba, classification/models/vmamba.py (class VSSM with ``sscore_type=
"multiscale_4scan_12"``, ``add_se``, ``convFFN``, patch embed "v1", downsample "v1"). Each block's SS2D stacks
K = 2 SSM parameter sets (0: the chained coarse routes, 1: the full-resolution route).

EfficientVMamba: TerryPei/EfficientVMamba, classification/lib/models/mamba/efficient_mamba.py (class
EfficientVSSM, the tree printed in the released training logs): stages 0-1 VSS blocks with ``conv_branch``
(Sequential: dwconv, BN, GELU, 1x1 conv) and ``se`` (BiAttn); stages 2-3 ``Sequential(Permute,
InvertedResidual x depth, Permute, PatchMerging2D or Identity)``.
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

Shapes = Dict[str, Tuple[int, ...]]
BN = ("weight", "bias", "running_mean", "running_var")


def _stem_and_head(out: Shapes, dims, num_classes, in_chans, old_names=False):
    embed, norm = ("patch_embed.proj", "patch_embed.norm") if old_names else ("patch_embed.0", "patch_embed.2")
    out[f"{embed}.weight"] = (dims[0], in_chans, 4, 4)
    out[f"{embed}.bias"] = (dims[0],)
    out[f"{norm}.weight"] = out[f"{norm}.bias"] = (dims[0],)
    norm, head = ("norm", "head") if old_names else ("classifier.norm", "classifier.head")
    out[f"{norm}.weight"] = out[f"{norm}.bias"] = (dims[-1],)
    out[f"{head}.weight"] = (num_classes, dims[-1])
    out[f"{head}.bias"] = (num_classes,)


def _merge(out: Shapes, prefix: str, dim: int, out_dim: int):
    out[prefix + "reduction.weight"] = (out_dim, 4 * dim)
    out[prefix + "norm.weight"] = out[prefix + "norm.bias"] = (4 * dim,)


def _ssm(out: Shapes, op: str, K: int, di: int, R: int, N: int):
    out[op + "x_proj_weight"] = (K, R + 2 * N, di)
    out[op + "dt_projs_weight"] = (K, di, R)
    out[op + "dt_projs_bias"] = (K, di)
    out[op + "A_logs"] = (K * di, N)
    out[op + "Ds"] = (K * di,)


def msvmamba_shapes(depths: Sequence[int], dims: Sequence[int], d_state: int = 1, ssm_ratio: float = 2.0,
                    num_classes: int = 1000, in_chans: int = 3, old_names: bool = False) -> Shapes:
    out: Shapes = {}
    _stem_and_head(out, dims, num_classes, in_chans, old_names)
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        di, R = int(ssm_ratio * dim), math.ceil(dim / 16)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            norm, op = (p + "ln_1.", p + "self_attention.") if old_names else (p + "norm.", p + "op.")
            out[norm + "weight"] = out[norm + "bias"] = (dim,)
            _ssm(out, op, 2, di, R, d_state)
            out[op + "out_norm.weight"] = out[op + "out_norm.bias"] = (di,)
            out[op + "se.fc.0.weight"] = (di // 8, di)
            out[op + "se.fc.2.weight"] = (di, di // 8)
            out[op + "in_proj.weight"] = (2 * di, dim)
            out[op + "conv2d.weight"] = (di, 1, 3, 3)
            out[op + "conv2d.bias"] = (di,)
            out[op + "conv2d_b1.weight"] = (di, 1, 7, 7)
            out[op + "conv2d_b1.bias"] = (di,)
            out[op + "out_proj.weight"] = (dim, di)
            out[p + "convFFN.linear1.weight"] = (2 * dim, dim, 1, 1)
            out[p + "convFFN.linear1.bias"] = (2 * dim,)
            out[p + "convFFN.linear2.weight"] = (dim, 2 * dim, 1, 1)
            out[p + "convFFN.linear2.bias"] = (dim,)
            out[p + "convFFN.dwc.weight"] = (2 * dim, 1, 3, 3)
            out[p + "convFFN.dwc.bias"] = (2 * dim,)
            out[p + "norm2.weight"] = out[p + "norm2.bias"] = (dim,)
        if i < len(depths) - 1:
            _merge(out, f"layers.{i}.downsample.", dim, dims[i + 1])
    return out


def efficient_vmamba_shapes(depths: Sequence[int], dims: Sequence[int], d_state: int = 16,
                            ssm_ratio: float = 2.0, ssm_stages: int = 2, num_classes: int = 1000,
                            in_chans: int = 3) -> Shapes:
    out: Shapes = {}
    _stem_and_head(out, dims, num_classes, in_chans)
    last = len(depths) - 1
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        if i < ssm_stages:
            di, R, r = int(ssm_ratio * dim), math.ceil(dim / 16), int(dim * 0.125)
            for j in range(depth):
                p = f"layers.{i}.blocks.{j}."
                op = p + "op."
                out[p + "norm.weight"] = out[p + "norm.bias"] = (dim,)
                _ssm(out, op, 4, di, R, d_state)
                out[op + "out_norm.weight"] = out[op + "out_norm.bias"] = (di,)
                out[op + "in_proj.weight"] = (2 * di, dim)
                out[op + "conv2d.weight"] = (di, 1, 3, 3)
                out[op + "conv2d.bias"] = (di,)
                out[op + "out_proj.weight"] = (dim, di)
                out[p + "conv_branch.0.weight"] = (dim, 1, 3, 3)
                out[p + "conv_branch.0.bias"] = (dim,)
                for b in BN:
                    out[p + f"conv_branch.1.{b}"] = (dim,)
                out[p + "conv_branch.1.num_batches_tracked"] = ()
                out[p + "conv_branch.3.weight"] = (dim, dim, 1, 1)
                out[p + "conv_branch.3.bias"] = (dim,)
                out[p + "se.norm.weight"] = out[p + "se.norm.bias"] = (dim,)
                out[p + "se.global_reduce.weight"] = (r, dim)
                out[p + "se.global_reduce.bias"] = (r,)
                out[p + "se.channel_select.weight"] = (dim, r)
                out[p + "se.channel_select.bias"] = (dim,)
            if i < last:
                _merge(out, f"layers.{i}.downsample.", dim, dims[i + 1])
        else:
            mid = 4 * dim
            rd = max(1, int(mid * 0.125))
            for n in range(1, depth + 1):
                p = f"layers.{i}.{n}."
                for name, shape, ch in (("conv_pw", (mid, dim, 1, 1), mid), ("conv_dw", (mid, 1, 3, 3), mid),
                                        ("conv_pw2", (dim, mid, 1, 1), dim)):
                    out[p + f"{name}.0.weight"] = shape
                    for b in BN:
                        out[p + f"{name}.1.{b}"] = (ch,)
                    out[p + f"{name}.1.num_batches_tracked"] = ()
                out[p + "se.conv_reduce.weight"] = (rd, mid, 1, 1)
                out[p + "se.conv_reduce.bias"] = (rd,)
                out[p + "se.conv_expand.weight"] = (mid, rd, 1, 1)
                out[p + "se.conv_expand.bias"] = (mid,)
            if i < last:  # Sequential(Permute, blocks..., Permute, PatchMerging2D)
                _merge(out, f"layers.{i}.{depth + 2}.", dim, dims[i + 1])
    return out


# the registered models as official configurations (depths, dims)
MSVMAMBA_CONFIGS = {
    "msvmamba_nano": ((1, 2, 5, 2), (48, 96, 192, 384)),
    "msvmamba_micro": ((1, 2, 5, 2), (64, 128, 256, 512)),
    "msvmamba_tiny": ((1, 2, 9, 2), (96, 192, 384, 768)),
    "test_msvmamba": ((1, 1, 2, 1), (24, 32, 48, 64)),
}
EFFICIENT_VMAMBA_CONFIGS = {
    "efficient_vmamba_tiny": ((2, 2, 4, 2), (48, 96, 192, 384), 16),
    "efficient_vmamba_small": ((2, 2, 4, 2), (64, 128, 256, 512), 16),
    "efficient_vmamba_base": ((2, 2, 9, 2), (96, 192, 384, 768), 16),
    "test_efficient_vmamba": ((1, 1, 2, 1), (24, 32, 48, 64), 4),
}
