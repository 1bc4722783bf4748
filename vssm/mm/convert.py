"""Convert an official detection / segmentation checkpoint (backbone in official names) for our configs.

Only ``backbone.*`` changes: the per-output norms keep their names, everything else goes through the
family's checkpoint filter and moves under ``backbone.body.``; necks and heads are copied unchanged.
Vim's official segmentation backbone (hustvl/Vim ``seg/backbone/vim.py``, mmseg 0.x) names its 4-scale adapter
``fpn1`` .. ``fpn4``: those become our pyramid's ``rescale.0`` .. ``rescale.3``; its final norm ``norm_f`` (kept
but unused by the official backbone, whose outputs are taken before it) is dropped. Any backbone key that cannot
be placed raises. The result is checked by loading it strictly into the model built from our config.
"""

from __future__ import annotations

import re

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope

from .checkpoint import extract_state_dict, family_logs_to, read_checkpoint

_OUT_NORM = re.compile(r"^outnorm\d+\.")
_OFFICIAL_PYRAMID = re.compile(r"^fpn([1-4])\.(.+)$")  # Vim's official 4-scale adapter (fpn1..fpn4)
_PRUNED = "not in the backbone: its outputs are taken before it (final norm, classifier, blocks after the last tap)"


def map_official_pyramid(body: dict, backbone: torch.nn.Module) -> tuple[dict, dict, dict]:
    """Split Vim's official ``fpn{1..4}.*`` adapter keys (backbone prefix stripped) off ``body``.

    ``fpn{k}.{rest}`` becomes ``rescale.{k-1}.{rest}``; where the official module is a one-element Sequential
    (``fpn2 = Sequential(ConvTranspose2d)``) and ours the bare module, ``fpn{k}.0.{x}`` becomes
    ``rescale.{k-1}.{x}``. Returns (pyramid tensors in our body names, the rest of ``body``, official -> ours).
    Raises ValueError naming every ``fpn*`` key that has no place in the backbone's pyramid.
    """
    official = [k for k in body if _OFFICIAL_PYRAMID.match(k)]
    if not official:
        return {}, body, {}
    ours = {k for k in backbone.body.state_dict() if k.startswith("rescale.")}
    if not ours:
        raise ValueError(f"the checkpoint has Vim's 4-scale adapter ({official[0]}, ...) but "
                         f"{type(backbone).__name__} has no pyramid (rescale.*) to take it")
    pyramid, renames, unplaced = {}, {}, []
    for key in official:
        level, rest = _OFFICIAL_PYRAMID.match(key).groups()
        names = [f"rescale.{int(level) - 1}.{rest}"]
        if rest.startswith("0."):
            names.append(f"rescale.{int(level) - 1}.{rest[2:]}")
        hit = [n for n in names if n in ours]
        if hit:
            pyramid[hit[0]], renames[key] = body[key], hit[0]
        else:
            unplaced.append(key)
    if unplaced:
        raise ValueError(f"{len(unplaced)} keys of the official 4-scale adapter have no place in our pyramid "
                         f"({sorted(ours)[:8]} ...): {sorted(unplaced)} (a checkpoint of another patch stride?)")
    return pyramid, {k: v for k, v in body.items() if k not in renames}, renames


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
    pyramid, body, pyramid_renames = map_official_pyramid(body, backbone)
    template = backbone.inner  # a detection backbone has no classifier head or final norm, as ours
    with family_logs_to(MMLogger.get_current_instance()):
        converted_body = filter_fn(body, template) if filter_fn else body
    inner_keys = set(template.state_dict())
    extra = [k for k in converted_body if k not in inner_keys]
    # parts the backbone prunes (e.g. Vim's final norm, which the official segmentation backbone keeps unused);
    # anything else stays in and fails the strict load
    dropped_keys = set(extra) & set(backbone.filter_template().state_dict()) if extra else set()
    dropped = {k: _PRUNED for k in sorted(dropped_keys)}
    out = dict(rest)
    out.update({f"backbone.{k}": v for k, v in norms.items()})
    prefix = "backbone.body." + backbone.inner_prefix
    out.update({prefix + k: v for k, v in converted_body.items() if k not in dropped_keys})
    out.update({f"backbone.body.{k}": v for k, v in pyramid.items()})
    report = dict(renamed=len(converted_body) - len(dropped), out_norms_kept=len(norms), unchanged=len(rest),
                  dropped=dropped, example=next(iter(zip(body, converted_body)), None),
                  pyramid={f"backbone.{k}": f"backbone.body.{v}" for k, v in pyramid_renames.items()})
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
