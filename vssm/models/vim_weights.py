"""Vim weights: loading the official state dict, and resampling a position table that holds a class token.

The official model (hustvl/Vim) keeps one module per direction (``conv1d`` / ``conv1d_b``, ``x_proj`` /
``x_proj_b``, ``dt_proj`` / ``dt_proj_b``, ``A_log`` / ``A_b_log``, ``D`` / ``D_b``); our mixer stacks the two
directions along a leading route axis. Every official key is either mapped or rejected with an error: nothing is
dropped silently.
"""

from __future__ import annotations

import re
from typing import Dict, Sequence, Tuple

import torch
from timm.layers import resample_abs_pos_embed

__all__ = ["checkpoint_filter_fn", "class_token_index", "resample_pos_embed_with_token", "OFFICIAL_ROUTE_KEYS"]

# official per-direction names -> (our stacked name, how to reshape the official tensor), forward route first
OFFICIAL_ROUTE_KEYS = {
    "conv_weight": ("conv1d.weight", "conv1d_b.weight"),   # (d, 1, k) each -> (2, d, k)
    "conv_bias": ("conv1d.bias", "conv1d_b.bias"),
    "x_proj_weight": ("x_proj.weight", "x_proj_b.weight"),
    "dt_proj_weight": ("dt_proj.weight", "dt_proj_b.weight"),
    "dt_proj_bias": ("dt_proj.bias", "dt_proj_b.bias"),
    "A_log": ("A_log", "A_b_log"),
    "D": ("D", "D_b"),
}
_SHARED_MIXER_KEYS = ("in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias")
_TOP_LEVEL = {"patch_embed.proj.weight": "patch_embed.proj.weight", "patch_embed.proj.bias": "patch_embed.proj.bias",
              "cls_token": "cls_token", "pos_embed": "pos_embed", "norm_f.weight": "norm.weight",
              "head.weight": "head.weight", "head.bias": "head.bias"}


def class_token_index(num_patches: int, position: str = "middle") -> int:
    """Index of the class token among ``num_patches + 1`` tokens: ``num_patches // 2`` in the middle (the
    official rule: for an odd count the token sits after the first ``floor(M / 2)`` patches), or 0 first."""
    return num_patches // 2 if position == "middle" else 0


def resample_pos_embed_with_token(posemb: torch.Tensor, new_size: Sequence[int], old_size: Sequence[int],
                                  num_prefix_tokens: int = 1, position: str = "middle",
                                  interpolation: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """Resample a (1, H*W + 1, C) position table whose class-token row sits at ``class_token_index(H*W)``.

    The class token's row is taken out, the H x W grid is resampled to ``new_size``, and the row is put back
    at the class token's index for the new grid (the middle moves with the grid size).
    """
    old_size, new_size = tuple(int(s) for s in old_size), tuple(int(s) for s in new_size)
    n_old = old_size[0] * old_size[1]
    if posemb.shape[1] != n_old + num_prefix_tokens:
        raise ValueError(f"position table has {posemb.shape[1]} rows, expected {n_old} grid cells of {old_size} "
                         f"+ {num_prefix_tokens} class token")
    if num_prefix_tokens == 0:
        return resample_abs_pos_embed(posemb, list(new_size), list(old_size), num_prefix_tokens=0,
                                      interpolation=interpolation, antialias=antialias)
    if num_prefix_tokens != 1:
        raise ValueError(f"one class token is supported, got num_prefix_tokens={num_prefix_tokens}")
    i = class_token_index(n_old, position)
    cls_row = posemb[:, i:i + 1]
    grid = torch.cat([posemb[:, :i], posemb[:, i + 1:]], dim=1)
    grid = resample_abs_pos_embed(grid, list(new_size), list(old_size), num_prefix_tokens=0,
                                  interpolation=interpolation, antialias=antialias)
    j = class_token_index(new_size[0] * new_size[1], position)
    return torch.cat([grid[:, :j], cls_row, grid[:, j:]], dim=1)


def _unwrap(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_ema"):
        if key in state_dict and isinstance(state_dict[key], dict):
            return state_dict[key]
    return state_dict


def _grid_of(model) -> Tuple[int, int]:
    return tuple(model.patch_embed.grid_size)


def _fix_pos_embed(pos: torch.Tensor, model) -> torch.Tensor:
    target = model.pos_embed
    if target is None or pos.shape == target.shape:
        return pos
    n_prefix = model.num_prefix_tokens
    n_old = pos.shape[1] - n_prefix
    side = int(round(n_old ** 0.5))
    if side * side != n_old:
        raise ValueError(f"checkpoint pos_embed has {n_old} grid rows, not a square grid; cannot resample")
    return resample_pos_embed_with_token(pos, _grid_of(model), (side, side), n_prefix, model.class_token_position)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model) -> Dict[str, torch.Tensor]:
    """Official Vim state dict (``layers.{i}.mixer.*``, ``norm_f``, ``_b`` backward parameters) -> ours.

    Stacks each forward/backward pair into our route-stacked tensors, renames ``layers`` -> ``blocks`` and
    ``norm_f`` -> ``norm``, resamples ``pos_embed`` to the model's grid around the class token. A state dict
    already in our layout passes through (position table resampled). Raises ValueError on any key it cannot
    place, and on a direction present without its partner.
    """
    state_dict = _unwrap(state_dict)
    if any(k.startswith("blocks.") for k in state_dict):  # already ours
        out = dict(state_dict)
        if "pos_embed" in out:
            out["pos_embed"] = _fix_pos_embed(out["pos_embed"], model)
        return out

    out: Dict[str, torch.Tensor] = {}
    per_layer: Dict[int, Dict[str, torch.Tensor]] = {}
    unknown = []
    layer_re = re.compile(r"^layers\.(\d+)\.(.+)$")
    for key, value in state_dict.items():
        if key in _TOP_LEVEL:
            out[_TOP_LEVEL[key]] = value
            continue
        m = layer_re.match(key)
        if m is None:
            unknown.append(key)
            continue
        per_layer.setdefault(int(m.group(1)), {})[m.group(2)] = value

    for i, params in sorted(per_layer.items()):
        prefix = f"blocks.{i}"
        if "norm.weight" in params:
            out[f"{prefix}.norm.weight"] = params.pop("norm.weight")
        for name in _SHARED_MIXER_KEYS:
            if f"mixer.{name}" in params:
                out[f"{prefix}.mixer.{name}"] = params.pop(f"mixer.{name}")
        for ours, (fwd, bwd) in OFFICIAL_ROUTE_KEYS.items():
            f, b = params.pop(f"mixer.{fwd}", None), params.pop(f"mixer.{bwd}", None)
            if f is None and b is None:
                continue
            if f is None or b is None:
                missing = fwd if f is None else bwd
                raise ValueError(f"layer {i}: found one direction of {ours} but not mixer.{missing}")
            stacked = torch.stack([f, b], dim=0)
            if ours == "conv_weight":
                stacked = stacked.squeeze(2)  # (2, d, 1, k) -> (2, d, k)
            out[f"{prefix}.mixer.{ours}"] = stacked
        unknown.extend(f"layers.{i}.{k}" for k in params)
    if unknown:
        raise ValueError(
            "checkpoint_filter_fn cannot place these Vim checkpoint keys (unsupported options such as rope, "
            f"layer scale or a double class token?): {sorted(unknown)[:20]}"
            + (f" ... and {len(unknown) - 20} more" if len(unknown) > 20 else ""))
    if "pos_embed" in out:
        out["pos_embed"] = _fix_pos_embed(out["pos_embed"], model)
    return out
