"""Convert an official detection / segmentation checkpoint (backbone in official names) for our configs.

Only ``backbone.*`` changes: the per-output norms keep their names, everything else goes through the
family's checkpoint filter and moves under ``backbone.body.``; necks and heads are copied unchanged.
The result is checked by loading it strictly into the model built from our config.
"""

from __future__ import annotations

import re

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from .checkpoint import extract_state_dict, read_checkpoint

_OUT_NORM = re.compile(r"^outnorm\d+\.")


def build_model_from_config(config: str | Config) -> torch.nn.Module:
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg.get("custom_imports"):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get("default_scope", "mmdet")
    if DefaultScope.get_current_instance() is None:
        init_default_scope(scope)
    registry = __import__(f"{scope}.registry", fromlist=["MODELS"]).MODELS
    model_cfg = cfg.model.copy()
    model_cfg.get("backbone", {}).pop("init_cfg", None)  # conversion must not load other weights
    model_cfg.get("backbone", {}).pop("pretrained", None)
    return registry.build(model_cfg)


def convert_state_dict(official: dict, model: torch.nn.Module) -> tuple[dict, dict]:
    """Returns (converted state dict, report of what changed)."""
    backbone = model.backbone
    filter_fn = type(backbone).checkpoint_filter
    bb = {k[len("backbone."):]: v for k, v in official.items() if k.startswith("backbone.")}
    rest = {k: v for k, v in official.items() if not k.startswith("backbone.")}
    norms = {k: v for k, v in bb.items() if _OUT_NORM.match(k)}
    body = {k: v for k, v in bb.items() if not _OUT_NORM.match(k)}
    if not body:
        raise ValueError("checkpoint has no backbone.* weights: is it a detector / segmentor checkpoint?")
    template = backbone.inner  # a detection backbone has no classifier head or final norm, as ours
    converted_body = filter_fn(body, template) if filter_fn else body
    dropped_keys = set(template.state_dict()) - set(backbone.inner.state_dict())
    dropped = sorted(k for k in converted_body if k in dropped_keys)
    out = dict(rest)
    out.update({f"backbone.{k}": v for k, v in norms.items()})
    prefix = "backbone.body." + backbone.inner_prefix
    out.update({prefix + k: v for k, v in converted_body.items() if k not in dropped_keys})
    report = dict(renamed=len(converted_body) - len(dropped), out_norms_kept=len(norms), unchanged=len(rest),
                  dropped=dropped, example=next(iter(zip(body, converted_body)), None))
    return out, report


def convert_checkpoint(src: str, dst: str, config: str, trust_checkpoint: bool = False) -> dict:
    model = build_model_from_config(config)
    ckpt = read_checkpoint(src, trust_checkpoint=trust_checkpoint)
    official = extract_state_dict(ckpt)
    converted, report = convert_state_dict(official, model)
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"converted checkpoint does not fit the model of {config}: missing {result.missing_keys[:10]} "
            f"({len(result.missing_keys)}), unexpected {result.unexpected_keys[:10]} ({len(result.unexpected_keys)})")
    meta = dict(ckpt.get("meta", {}) or {}) if isinstance(ckpt, dict) else {}
    meta["converted_from"] = str(src)
    torch.save(dict(state_dict=converted, meta=meta), dst)
    return report
