"""Vim weights: loading the official state dict, and resampling a position table that holds a class token.

The official model (hustvl/Vim) keeps one module per direction (``conv1d`` / ``conv1d_b``, ``x_proj`` /
``x_proj_b``, ``dt_proj`` / ``dt_proj_b``, ``A_log`` / ``A_b_log``, ``D`` / ``D_b``); our mixer stacks the two
directions along a leading route axis. Every official key is either mapped or rejected with an error: nothing is
dropped silently.

A classification checkpoint with a class token (official ``*_midclstok`` or ours) also loads into a model built
without one (the segmentation backbone): the class token and its row of the position table are dropped, the
patch rows are resampled to the model's grid, and both steps are logged (logger ``vssm.models.vim_weights``).
"""

from __future__ import annotations

import logging
import math
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
_logger = logging.getLogger(__name__)
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


def _grid_side(rows: int) -> int:
    side = math.isqrt(rows)
    return side if side * side == rows else -1


def _fix_pos_embed(pos: torch.Tensor, model, checkpoint_has_token: bool) -> torch.Tensor:
    """The checkpoint's position table for ``model``: class-token row dropped if the model has no class token,
    grid resampled if the grids differ. Anything else that does not fit raises a ValueError."""
    target = model.pos_embed
    if target is None:
        return pos  # the model has no position table: the loader reports pos_embed as unexpected
    n_prefix = model.num_prefix_tokens
    grid = _grid_of(model)
    rows = pos.shape[1]
    if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != target.shape[2]:
        raise ValueError(f"checkpoint pos_embed has shape {tuple(pos.shape)}, the model's is {tuple(target.shape)}")
    ckpt_prefix = 1 if checkpoint_has_token else 0
    side = _grid_side(rows - ckpt_prefix)
    if side < 0:
        if _grid_side(rows - 1 + ckpt_prefix) > 0:
            raise ValueError(
                f"checkpoint pos_embed has {rows} rows, which fits a square grid "
                f"{'without' if checkpoint_has_token else 'plus'} a class token, but the checkpoint "
                f"{'has' if checkpoint_has_token else 'has no'} cls_token: an inconsistent checkpoint")
        raise ValueError(f"checkpoint pos_embed has {rows} rows, not a square grid"
                         f"{' plus a class token' if checkpoint_has_token else ''}; cannot resample")
    if n_prefix and not checkpoint_has_token:
        raise ValueError(f"the model has a class token but the checkpoint has none (no cls_token, a {side}x{side} "
                         "position table without a token row): build the model with class_token=False")
    if checkpoint_has_token and not n_prefix:
        i = class_token_index(side * side, model.class_token_position)
        pos = torch.cat([pos[:, :i], pos[:, i + 1:]], dim=1)
        _logger.info(f"pos_embed: dropped row {i} of {rows} (the class token's, position "
                     f"'{model.class_token_position}'): the model has no class token; {side}x{side} patch rows kept")
    if (side, side) != tuple(grid):
        _logger.info(f"pos_embed: resampled the {side}x{side} patch rows to the model's {grid[0]}x{grid[1]} grid "
                     f"(bicubic){' around the class token' if n_prefix else ''}")
        return resample_pos_embed_with_token(pos, grid, (side, side), n_prefix, model.class_token_position)
    return pos


def _drop_class_token(out: Dict[str, torch.Tensor], model) -> bool:
    """Remove ``cls_token`` when the model has none (logged); returns whether the checkpoint had one."""
    if "cls_token" not in out:
        return False
    if getattr(model, "cls_token", None) is None:
        value = out.pop("cls_token")
        if "pos_embed" not in out and getattr(model, "pos_embed", None) is not None:
            raise ValueError("checkpoint has cls_token but no pos_embed: cannot tell which rows to keep")
        _logger.info(f"cls_token {tuple(value.shape)}: dropped, the model is built without a class token")
    return True


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model) -> Dict[str, torch.Tensor]:
    """Official Vim state dict (``layers.{i}.mixer.*``, ``norm_f``, ``_b`` backward parameters) -> ours.

    Stacks each forward/backward pair into our route-stacked tensors, renames ``layers`` -> ``blocks`` and
    ``norm_f`` -> ``norm``, resamples ``pos_embed`` to the model's grid around the class token. A state dict
    already in our layout passes through (position table resampled). For a model without a class token (the
    segmentation backbone) a checkpoint's ``cls_token`` and its row of ``pos_embed`` are dropped (logged). Raises
    ValueError on any key it cannot place, on a direction present without its partner, and on a class token /
    position table that do not fit the model (a token the model needs but the checkpoint lacks, a table whose
    row count disagrees with the presence of ``cls_token``).
    """
    state_dict = _unwrap(state_dict)
    if any(k.startswith("blocks.") for k in state_dict):  # already ours
        out = dict(state_dict)
        has_token = _drop_class_token(out, model)
        if "pos_embed" in out:
            out["pos_embed"] = _fix_pos_embed(out["pos_embed"], model, has_token)
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
    has_token = _drop_class_token(out, model)
    if "pos_embed" in out:
        out["pos_embed"] = _fix_pos_embed(out["pos_embed"], model, has_token)
    return out
