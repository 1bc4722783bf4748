"""Training and evaluation helpers for the video predictors (used by ``tools/train_convs5.py`` and tests).

``fit`` runs AdamW with linear warmup and cosine decay on the model's own loss; ``evaluate_generation``
conditions on the first frames of held-out clips and generates the rest in step mode, scoring the
per-pixel MSE against two baselines: repeating the last context frame and an empty frame; ``save_strip``
writes a PNG with the true frames above the generated ones.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

__all__ = ["fit", "evaluate_generation", "save_strip", "cosine_lr", "load_recipe"]


def cosine_lr(step: int, total: int, warmup: int, base_lr: float, min_ratio: float = 0.0) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def fit(model: torch.nn.Module, batches: Iterable[torch.Tensor], steps: int, lr: float = 1e-3,
        weight_decay: float = 1e-5, warmup: int = 0, clip_grad: float | None = None, device="cpu",
        optimizer: torch.optim.Optimizer | None = None, start_step: int = 0,
        on_step: Callable[[int, dict], None] | None = None, progress: bool = False):
    """Train for ``steps - start_step`` steps on clips from ``batches`` (cycled). Returns (optimizer, losses)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    model.to(device).train()
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=start_step, desc="train", dynamic_ncols=True)
    losses = []
    it = iter(batches)
    for step in range(start_step, steps):
        try:
            clip = next(it)
        except StopIteration:
            it = iter(batches)
            clip = next(it)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, warmup, lr)
        out = model.loss(clip.to(device))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        values = {k: float(v.detach()) for k, v in out.items()}
        losses.append(values["loss"])
        if bar is not None:
            bar.set_postfix(loss=f"{values['loss']:.3f}", mse=f"{values['mse_loss']:.3f}")
            bar.update(1)
        if on_step is not None:
            on_step(step + 1, values)
    if bar is not None:
        bar.close()
    return optimizer, losses


@torch.no_grad()
def evaluate_generation(model: torch.nn.Module, clips: torch.Tensor, num_context: int, device="cpu") -> dict:
    """Per-pixel MSE of the frames generated after ``num_context`` context frames (step mode), and of the
    copy-last-context-frame and empty-frame baselines. ``clips``: (batch, T, C, H, W) in [-1, 1]."""
    model.to(device).eval()
    clips = clips.to(device)
    generated = model.generate(clips, num_context)
    truth = clips[:, num_context:]
    pred = generated[:, num_context:]
    copy_last = clips[:, num_context - 1:num_context].expand_as(truth)
    blank = torch.full_like(truth, -1.0)
    return {
        "model_mse": float((pred - truth).pow(2).mean()),
        "copy_last_mse": float((copy_last - truth).pow(2).mean()),
        "blank_mse": float((blank - truth).pow(2).mean()),
        "generated": generated.cpu(),
    }


def save_strip(path: str, truth: torch.Tensor, generated: torch.Tensor, num_context: int | None = None,
               max_frames: int = 16) -> None:
    """A PNG: the true frames (top row) and the generated ones (bottom row) of one clip (T, C, H, W) in
    [-1, 1]; a white bar under the context frames when ``num_context`` is given."""
    from PIL import Image

    t = min(truth.shape[0], generated.shape[0], max_frames)
    rows = []
    for clip in (truth[:t], generated[:t]):
        frames = ((clip.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        frames = frames.mean(1, dtype=torch.float32).round().to(torch.uint8) if frames.shape[1] != 1 else frames[:, 0]
        frames = torch.nn.functional.pad(frames, (1, 1, 1, 1), value=64)     # a thin grey border per frame
        rows.append(torch.cat(list(frames), dim=1))
    strip = torch.cat(rows, dim=0)
    if num_context:
        bar = torch.zeros(3, strip.shape[1], dtype=torch.uint8)
        bar[:, : num_context * (truth.shape[-1] + 2)] = 255
        strip = torch.cat([strip, bar], dim=0)
    Image.fromarray(strip.numpy(), mode="L").save(path)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_recipe(path: str) -> dict:
    """A YAML recipe; ``_base_: other.yaml`` (relative to the file) is loaded first and deep-merged under it."""
    import os

    import yaml

    with open(path) as f:
        recipe = yaml.safe_load(f) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: a recipe must be a mapping, got {type(recipe).__name__}")
    base = recipe.pop("_base_", None)
    if base:
        recipe = _merge(load_recipe(os.path.join(os.path.dirname(path), base)), recipe)
    for section in ("data", "train"):
        if not isinstance(recipe.get(section), dict):
            raise ValueError(f"{path}: the recipe needs a '{section}' mapping")
    if "model" not in recipe:
        raise ValueError(f"{path}: the recipe needs a 'model' (a timm model name)")
    return recipe
