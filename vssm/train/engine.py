"""One training epoch and one evaluation pass, built from timm's loss, mixup, EMA, scaler and clipping."""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import NativeScaler, accuracy, dispatch_clip_grad
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .data import to_device
from .distributed import DistContext, all_reduce_mean, all_reduce_sum

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def build_mixup(args: argparse.Namespace, num_classes: int) -> Optional[Mixup]:
    if args.mixup <= 0 and args.cutmix <= 0 and args.cutmix_minmax is None:
        return None
    return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                 prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                 label_smoothing=args.smoothing, num_classes=num_classes)


def build_train_loss(args: argparse.Namespace, mixup: Optional[Mixup]) -> nn.Module:
    if mixup is not None:  # mixup already produces smoothed soft targets
        return SoftTargetCrossEntropy()
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return nn.CrossEntropyLoss()


@dataclass
class StepRecord:
    epoch: int
    step: int  # optimizer updates since the start of training
    lr: float
    loss: float  # mean over all processes of this step's loss


@dataclass
class EpochStats:
    loss: float
    images_per_s: float
    seconds: float
    num_updates: int
    max_mem_gb: Optional[float] = None  # peak CUDA memory of this process during the epoch


def train_one_epoch(
    *, model: nn.Module, loader, optimizer, scheduler, loss_fn: nn.Module, mixup: Optional[Mixup], ema,
    scaler: Optional[NativeScaler], args: argparse.Namespace, epoch: int, num_updates: int, ctx: DistContext,
    on_log: Callable[[StepRecord], None], progress: bool = False,
) -> EpochStats:
    model.train()
    autocast = autocast_context(args.amp, ctx.device)
    accum = args.grad_accum_steps
    clip = args.clip_grad if args.clip_grad else None
    steps = len(loader) // accum * accum  # a trailing partial accumulation is dropped
    loss_sum, images = 0.0, 0
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, disable=not progress)
    batches = iter(loader)
    for i in range(steps):
        x, y = to_device(*next(batches), ctx, args.channels_last)
        if mixup is not None:
            x, y = mixup(x, y)
        update_now = (i + 1) % accum == 0
        # DDP: average gradients across processes only on the micro-step that updates the weights
        sync = model.no_sync() if (ctx.distributed and not update_now) else contextlib.nullcontext()
        with sync:
            with autocast():
                loss = loss_fn(model(x), y)
            if scaler is not None:
                scaler(loss / accum, optimizer, clip_grad=clip, clip_mode=args.clip_mode,
                       parameters=model.parameters(), need_update=update_now)
            else:
                (loss / accum).backward()
                if update_now:
                    if clip is not None:
                        dispatch_clip_grad(model.parameters(), clip, mode=args.clip_mode)
                    optimizer.step()
        loss_value = loss.detach().float().item()
        loss_sum += loss_value * x.shape[0]
        images += x.shape[0]
        if not update_now:
            continue
        optimizer.zero_grad(set_to_none=True)
        num_updates += 1
        if ema is not None:
            ema.update(model.module if isinstance(model, DistributedDataParallel) else model, step=num_updates)
        if scheduler is not None:
            scheduler.step_update(num_updates=num_updates)
        if num_updates % args.log_interval == 0:
            on_log(StepRecord(epoch=epoch, step=num_updates, lr=optimizer.param_groups[0]["lr"],
                              loss=all_reduce_mean(loss_value, ctx)))
        bar.update(accum)
        bar.set_postfix(loss=f"{loss_value:.3f}")
    bar.close()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    seconds = time.perf_counter() - start
    total_loss, total_images = all_reduce_sum([loss_sum, float(images)], ctx)
    max_mem = torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.device.type == "cuda" else None
    return EpochStats(loss=total_loss / max(total_images, 1), images_per_s=total_images / max(seconds, 1e-9),
                      seconds=seconds, num_updates=num_updates, max_mem_gb=max_mem)


@torch.no_grad()
def evaluate(model: nn.Module, loader, args: argparse.Namespace, ctx: DistContext) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (percent) over the whole evaluation split, all processes together."""
    model.eval()
    autocast = autocast_context(args.amp, ctx.device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_sum = top1 = top5 = count = 0.0
    for x, y in loader:
        x, y = to_device(x, y, ctx, args.channels_last)
        with autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += loss_fn(logits, y).item()
        k = min(5, logits.shape[1])
        acc1, acck = accuracy(logits, y, topk=(1, k))
        top1 += acc1.item() * x.shape[0] / 100.0
        top5 += acck.item() * x.shape[0] / 100.0
        count += x.shape[0]
    loss_sum, top1, top5, count = all_reduce_sum([loss_sum, top1, top5, count], ctx)
    count = max(count, 1.0)
    return dict(loss=loss_sum / count, top1=100.0 * top1 / count, top5=100.0 * top5 / count)
