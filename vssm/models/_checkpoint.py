"""The one check every family's ``checkpoint_filter_fn`` ends with: nothing dropped silently."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch


def _listed(items: Sequence[str], limit: int = 20) -> str:
    return f"{list(items[:limit])}{' ...' if len(items) > limit else ''}"


def raise_if_incomplete(model: torch.nn.Module, converted: Mapping[str, torch.Tensor], unknown: Sequence[str],
                        ours: Mapping[str, torch.Tensor]) -> None:
    """Raise a ValueError listing source keys no rule placed (``unknown``), parameters of ``ours`` the converted
    dict does not cover, and tensors whose shape differs from ours. A classifier of another size is not a
    mismatch: timm's loader drops it when ``num_classes`` differs."""
    misshapen = [f"{k} {tuple(v.shape)} vs {tuple(ours[k].shape)}"
                 for k, v in converted.items() if v.shape != ours[k].shape and not k.startswith("head.fc.")]
    missing = sorted(k for k in ours if k not in converted)
    if unknown or missing or misshapen:
        message = (f"checkpoint does not match {type(model).__name__}: {len(unknown)} unknown keys "
                   f"{_listed(list(unknown))}; {len(missing)} parameters not covered {_listed(missing)}")
        if misshapen:
            message += f"; shape mismatches {_listed(misshapen)}"
        raise ValueError(message)
