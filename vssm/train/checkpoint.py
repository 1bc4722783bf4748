"""Training checkpoints: atomic save, auto-resume, and a check that a checkpoint belongs to this run."""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

import torch

from .config import plain

LAST = "last.pth"
BEST = "best.pth"


def save_atomically(state: dict[str, Any], path: str) -> None:
    """Write to a temporary file then rename, so a run killed mid-write never leaves a truncated checkpoint."""
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def resume_path(args: argparse.Namespace) -> Optional[str]:
    """The checkpoint this run continues from: --resume, else OUTPUT/last.pth when auto-resume is on."""
    if args.resume:
        if not os.path.isfile(args.resume):
            raise FileNotFoundError(f"resume checkpoint not found: {args.resume}")
        return args.resume
    last = os.path.join(args.output, LAST)
    if args.auto_resume and os.path.isfile(last):
        return last
    return None


def load_checkpoint(path: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file gets the same clear message)
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
        raise ValueError(f"{path} is not a checkpoint written by this trainer (no model name / weights)")
    return state


def check_compatible(state: dict[str, Any], path: str, model_name: str, num_classes: int,
                     model_kwargs: dict[str, Any]) -> None:
    """Refuse a checkpoint of another model, class count or architecture options before anything is written."""
    if state["model_name"] != model_name:
        raise ValueError(f"checkpoint {path} was written for model '{state['model_name']}', but this run trains "
                         f"'{model_name}'; choose another --output or --resume")
    if state.get("num_classes") != num_classes:
        raise ValueError(f"checkpoint {path} has {state.get('num_classes')} classes, this dataset has {num_classes}")
    if plain(state.get("model_kwargs") or {}) != plain(model_kwargs or {}):
        raise ValueError(f"checkpoint {path} was built with model_kwargs {state.get('model_kwargs')}, "
                         f"this run uses {model_kwargs}")


def training_state(*, model_name: str, model_kwargs: dict, num_classes: int, class_to_idx: dict[str, int],
                   model, optimizer, ema, scaler, epoch: int, num_updates: int, best_top1: float,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Everything needed to continue: weights, optimizer/EMA/scaler states and counters.

    ``epoch`` is the number of completed epochs. Only plain types and tensors, so ``weights_only`` loading works.
    """
    return dict(
        model_name=model_name,
        model_kwargs=plain(model_kwargs or {}),
        num_classes=num_classes,
        class_to_idx=dict(class_to_idx),
        epoch=epoch,
        num_updates=num_updates,
        best_top1=best_top1,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        ema=ema.module.state_dict() if ema is not None else None,
        scaler=scaler.state_dict() if scaler is not None else None,
        args=plain(vars(args)),
    )


def restore_training_state(state: dict[str, Any], *, model, optimizer, ema, scaler) -> None:
    # The lr schedule is not restored: it is a function of the update count, rebuilt from this run's options,
    # so a run resumed on a different number of processes follows the schedule of its own step count.
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None:
        # a checkpoint without EMA (EMA switched on later) starts the EMA from the resumed weights
        ema.module.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
