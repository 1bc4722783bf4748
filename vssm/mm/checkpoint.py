"""Reading checkpoints safely and loading them into a backbone strictly, with every key problem in the log.

Two kinds of checkpoint reach a backbone: classification checkpoints (official or ours, converted by the
family's ``checkpoint_filter_fn``) and detector/segmentor checkpoints of ours (``backbone.*`` keys).
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Callable, Optional

import torch
from mmengine.logging import MMLogger

_OUT_NORM = re.compile(r"^outnorm\d+\.")
_SAFE_GLOBALS_DONE = False


def _history_state(self) -> dict:
    # MMEngine pickles the class-level statistics functions into every HistoryBuffer, which needs `getattr`
    # to unpickle; the default ones are registered again on load anyway, so leave them out
    state = dict(self.__dict__)
    state.pop("statistics_methods", None)
    return state


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read MMEngine's checkpoints (message hub, numpy scalars).

    torch >= 2.6 refuses unknown globals by default; we allow the few MMEngine stores instead of turning the
    protection off, and save message-hub buffers without their statistics functions (which would need
    ``getattr``). Checkpoints written by an unpatched MMEngine need ``trust_checkpoint`` / weights_only=False.
    """
    global _SAFE_GLOBALS_DONE
    if _SAFE_GLOBALS_DONE:
        return
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    HistoryBuffer.__getstate__ = _history_state

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / 1
    allowed = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes by their class (np.dtypes.Float64DType, ...)
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    allowed += [np.float64, np.float32, np.int64, np.int32, np.bool_]
    torch.serialization.add_safe_globals(allowed)
    _SAFE_GLOBALS_DONE = True


def read_checkpoint(path: str, trust_checkpoint: bool = False) -> dict:
    """Load a checkpoint file or URL on CPU with ``weights_only=True`` unless the caller trusts the file."""
    allow_mmengine_checkpoints()
    weights_only = not trust_checkpoint
    try:
        if str(path).startswith(("http://", "https://")):
            return torch.hub.load_state_dict_from_url(path, map_location="cpu", weights_only=weights_only)
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except Exception as e:  # pickle.UnpicklingError for objects outside the allowed globals
        if weights_only and "weights_only" in str(e):
            raise RuntimeError(
                f"checkpoint {path} stores Python objects that weights_only loading refuses ({e}). If you trust "
                "the file, load it with trust_checkpoint=True (init_cfg=dict(type='Pretrained', "
                "checkpoint=..., trust_checkpoint=True))."
            ) from e
        raise


def extract_state_dict(ckpt: dict, key: Optional[str] = None) -> dict:
    """The tensor dict inside a checkpoint: ``key`` if given, else 'state_dict' (MMEngine) or 'model'."""
    if key is not None:
        if key not in ckpt:
            raise KeyError(f"checkpoint has no '{key}' entry; it has {sorted(ckpt)[:10]}")
        sd = ckpt[key]
    elif "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    elif "model" in ckpt and isinstance(ckpt["model"], dict):
        sd = ckpt["model"]
    else:
        sd = ckpt
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError("checkpoint entry is not a state dict of tensors; pass the key that holds the weights")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


@contextlib.contextmanager
def family_logs_to(logger: logging.Logger):
    """Forward what the family filters log (logger ``vssm.models``, e.g. a dropped class token or a resampled
    position table) to ``logger`` (MMEngine's) at INFO and above while the block runs."""
    source = logging.getLogger("vssm.models")

    class _Forward(logging.Handler):
        def emit(self, record):
            logger.log(record.levelno, f"  {record.name.rsplit('.', 1)[-1]}: {record.getMessage()}")

    handler, level = _Forward(), source.level
    source.addHandler(handler)
    if source.getEffectiveLevel() > logging.INFO:
        source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(level)


def split_backbone_keys(sd: dict, logger: MMLogger) -> dict:
    """Keep the ``backbone.`` part of a whole-detector/segmentor state dict (prefix stripped)."""
    if not any(k.startswith("backbone.") for k in sd):
        return sd
    rest = [k for k in sd if not k.startswith("backbone.")]
    if rest:
        logger.info(f"checkpoint holds a whole model: using its backbone.* keys, leaving {len(rest)} others")
    return {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}


def load_backbone_checkpoint(
    backbone: torch.nn.Module,
    sd: dict,
    filter_fn: Optional[Callable[[dict, torch.nn.Module], dict]],
    source: str = "checkpoint",
    strict: bool = True,
) -> None:
    """Load ``sd`` into a :class:`TimmPyramidBackbone`: out-norms directly, the body through ``filter_fn``.

    Every missing, unexpected or mis-shaped key is logged; with ``strict`` any of them raises (classification
    heads the backbone does not have, and out-norms absent from classification checkpoints, are expected).
    """
    logger = MMLogger.get_current_instance()
    sd = split_backbone_keys(dict(sd), logger)
    out_norm_sd = {k: v for k, v in sd.items() if _OUT_NORM.match(k)}
    body_sd = {k: v for k, v in sd.items() if not _OUT_NORM.match(k)}
    ours = bool(body_sd) and all(k.startswith("body.") for k in body_sd)  # a backbone of ours: names are ours
    if ours:
        body_sd = {k[len("body."):]: v for k, v in body_sd.items()}
    fresh_ok = False
    if not ours:  # a classification checkpoint for the inner timm model
        head_keys = [k for k in body_sd if k.startswith(backbone.head_prefixes)]  # a classifier of ours
        for k in head_keys:
            body_sd.pop(k)
        # a detector's backbone (it has out-norms) lacks the classifier's final norm and head, like ours
        template = backbone.inner if out_norm_sd else backbone.filter_template()
        try:
            with family_logs_to(logger):
                body_sd = filter_fn(body_sd, template) if filter_fn is not None else body_sd
        except ValueError as e:
            raise ValueError(f"{source} does not fit {type(backbone).__name__}({backbone.arch_desc}): {e}") from e
        inner = set(backbone.inner.state_dict())
        dropped = set(template.state_dict()) - inner  # head, final norm, stages after the last output
        head_keys += [k for k in body_sd if k in dropped]
        body_sd = {backbone.inner_prefix + k: v for k, v in body_sd.items() if k not in dropped}
        fresh_ok = True
    else:
        head_keys = []

    own = backbone.body.state_dict()
    missing = sorted(set(own) - set(body_sd))
    fresh = [k for k in missing if fresh_ok and k.startswith(backbone.fresh_prefixes)]
    missing = [k for k in missing if k not in fresh]
    if fresh:
        logger.info(f"  {len(fresh)} tensors of the dense-output modules are not in a classification checkpoint "
                    f"and keep their initial values ({', '.join(backbone.fresh_prefixes)})")
    unexpected = sorted(set(body_sd) - set(own))
    shape = sorted(k for k in set(own) & set(body_sd) if own[k].shape != body_sd[k].shape)
    own_norms = {k for k in backbone.state_dict() if _OUT_NORM.match(k)}
    norm_missing = sorted(own_norms - set(out_norm_sd))
    norm_unexpected = sorted(set(out_norm_sd) - own_norms)

    logger.info(
        f"{type(backbone).__name__}: loading {source}: {len(body_sd) - len(unexpected) - len(shape)} tensors "
        f"match, {len(head_keys)} classifier-head tensors left out"
    )
    problems = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("unexpected out-norm", norm_unexpected)):
        for k in keys:
            logger.warning(f"  {title} key: {k}")
        if keys:
            problems.append(f"{len(keys)} {title} keys (first: {keys[0]})")
    for k in shape:
        logger.warning(f"  shape mismatch: {k}: checkpoint {tuple(body_sd[k].shape)} vs model {tuple(own[k].shape)}")
    if shape:
        k = shape[0]
        problems.append(
            f"{len(shape)} shape mismatches (first: {k} checkpoint {tuple(body_sd[k].shape)} vs model "
            f"{tuple(own[k].shape)})"
        )
    if norm_missing and out_norm_sd:  # a detector checkpoint should carry all of them
        problems.append(f"out-norms missing: {norm_missing}")
    elif norm_missing:
        logger.info(f"  out-norms not in the checkpoint, kept at their initial values: {norm_missing}")

    if problems and strict:
        raise ValueError(
            f"{source} does not fit {type(backbone).__name__}({backbone.arch_desc}): " + "; ".join(problems)
            + ". Is it a checkpoint of another family or size?"
        )
    body_sd = {k: v for k, v in body_sd.items() if k in own and k not in shape}
    backbone.body.load_state_dict(body_sd, strict=False)
    norm_sd = {k: v for k, v in out_norm_sd.items() if k in own_norms}
    backbone.load_state_dict(norm_sd, strict=False)
