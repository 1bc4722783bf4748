"""The classification training run: checks, model/optimizer/schedule/EMA set-up, epoch loop, checkpoints, logs.

``fit(args)`` runs on one process or on every process of ``torchrun --nproc_per_node=N``. All input checks
happen before the first file is written, so a bad dataset, model name or resume checkpoint leaves an existing
run folder untouched.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import shutil
from dataclasses import dataclass
from typing import Any, Optional

import timm
import torch
import torch.nn as nn
import yaml
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, NativeScaler
from torch.nn.parallel import DistributedDataParallel

from . import checkpoint as ckpt
from .config import plain, scaled_learning_rates
from .data import (FolderSummary, build_eval_loader, build_train_loader, check_batch_fits, check_val_classes,
                   inspect_image_folder)
from .distributed import (DistContext, barrier, cleanup_distributed, epoch_seed, fail_together, init_distributed,
                          seed_everything)
from .engine import EpochStats, build_mixup, build_train_loss, evaluate, train_one_epoch
from .logs import EPOCH_FIELDS, STEP_FIELDS, CsvLog, write_json


@dataclass
class RunPlan:
    """What the checks found: the data splits, the class count and the checkpoint to resume from."""

    train: FolderSummary
    val: Optional[FolderSummary]
    num_classes: int
    steps_per_epoch: int
    resume_from: Optional[str]
    resume_state: Optional[dict[str, Any]]


@dataclass
class FitResult:
    model: nn.Module  # the trained model (not wrapped in DDP)
    ema: Optional[nn.Module]
    summary: dict[str, Any]


def check_model_name(name: str) -> None:
    if not name:
        raise ValueError("no model given: pass --model (a timm model name such as vmamba_tiny)")
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown model '{name}': it is neither a vssm nor a timm model.{hint} "
                     f"List them with `import vssm, timm; timm.list_models('vmamba*')`.")


def check_inputs(args: argparse.Namespace, ctx: DistContext) -> RunPlan:
    """Every check that can fail on user input, done before anything is written."""
    check_model_name(args.model)
    if not args.data_dir:
        raise ValueError("no dataset given: pass --data-dir (a folder holding train/<class>/<image>)")
    train = inspect_image_folder(os.path.join(args.data_dir, args.train_split))
    val = None
    if args.val_split:
        val = inspect_image_folder(os.path.join(args.data_dir, args.val_split), min_classes=1)
        check_val_classes(train, val)
    num_classes = args.num_classes or len(train.class_to_idx)
    if num_classes < len(train.class_to_idx):
        raise ValueError(f"--num-classes {num_classes} is smaller than the {len(train.class_to_idx)} class "
                         f"folders of {train.root}")
    steps = check_batch_fits(train.num_images, args.batch_size, ctx, args.aug_repeats)
    if steps < args.grad_accum_steps:
        raise ValueError(f"one epoch has {steps} step(s), fewer than --grad-accum-steps {args.grad_accum_steps}")
    if build_mixup(args, num_classes) is not None and args.batch_size % 2:
        raise ValueError(f"mixup/cutmix pair images within a batch: --batch-size must be even, got {args.batch_size}")
    if args.warmup_prefix and args.warmup_epochs >= args.epochs:
        raise ValueError(f"--warmup-epochs {args.warmup_epochs} must be smaller than --epochs {args.epochs}")
    if args.pretrained_file and not os.path.isfile(args.pretrained_file):
        raise FileNotFoundError(f"--pretrained-file not found: {args.pretrained_file}")
    resume_from = ckpt.resume_path(args)
    state = None
    if resume_from:
        state = ckpt.load_checkpoint(resume_from)
        ckpt.check_compatible(state, resume_from, args.model, num_classes, args.model_kwargs)
    return RunPlan(train=train, val=val, num_classes=num_classes, steps_per_epoch=steps,
                   resume_from=resume_from, resume_state=state)


def build_model(args: argparse.Namespace, num_classes: int, ctx: DistContext) -> nn.Module:
    seed_everything(args.seed)  # identical initial weights on every rank and in every re-run
    weights = {}
    if args.pretrained_file:
        weights = dict(pretrained=True, pretrained_cfg_overlay=dict(file=os.path.abspath(args.pretrained_file)))
    elif args.pretrained:
        weights = dict(pretrained=True)
    model = timm.create_model(args.model, num_classes=num_classes, drop_rate=args.drop,
                              drop_path_rate=args.drop_path, **weights, **args.model_kwargs)
    if args.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"model '{args.model}' has no set_grad_checkpointing(); drop --grad-checkpointing")
        model.set_grad_checkpointing(True)
    model.to(ctx.device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _say(ctx: DistContext, msg: str) -> None:
    if ctx.is_main:
        print(msg, flush=True)


def _dump_config(args: argparse.Namespace, path: str) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(plain({k: v for k, v in vars(args).items() if k != "config"}), f, sort_keys=True)


def fit(args: argparse.Namespace) -> FitResult:
    """Train ``args.model`` on ``args.data_dir``; joins/leaves the torchrun process group if there is one."""
    ctx = init_distributed(args.device)
    try:
        return _fit(args, ctx)
    finally:
        cleanup_distributed()


def _fit(args: argparse.Namespace, ctx: DistContext) -> FitResult:
    error, plan = None, None
    try:
        plan = check_inputs(args, ctx)
    except (ValueError, FileNotFoundError) as e:
        error = e
    fail_together(error, ctx)

    lrs = scaled_learning_rates(args, ctx.world_size)
    model = build_model(args, plan.num_classes, ctx)
    opt_args = copy.copy(args)
    opt_args.lr = lrs["lr"]
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=opt_args))
    updates_per_epoch = plan.steps_per_epoch // args.grad_accum_steps
    decay_epochs = args.epochs - args.warmup_epochs if args.warmup_prefix else args.epochs
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=args.sched, num_epochs=decay_epochs, warmup_epochs=args.warmup_epochs,
        warmup_lr=lrs["warmup_lr"], min_lr=lrs["min_lr"], warmup_prefix=args.warmup_prefix,
        step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    # EMA before DDP (it copies the bare model); it sees identical updates on every rank
    ema = ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup) if args.model_ema else None
    scaler = NativeScaler(device=ctx.device.type) if args.amp == "fp16" else None

    start_epoch, num_updates, best_top1 = 0, 0, -1.0
    if plan.resume_state is not None:
        ckpt.restore_training_state(plan.resume_state, model=model, optimizer=optimizer, ema=ema, scaler=scaler)
        start_epoch = plan.resume_state["epoch"]
        # the update count this run would have reached (differs from the saved one if the process count changed)
        num_updates = start_epoch * updates_per_epoch
        best_top1 = plan.resume_state.get("best_top1", -1.0)
        _say(ctx, f"resuming from {plan.resume_from}: {start_epoch} epoch(s), {num_updates} update(s) done")
        plan.resume_state = None  # free the CPU copy
    if scheduler is not None:
        scheduler.step_update(num_updates=num_updates)

    train_model = DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) if ctx.distributed else model
    train_loader, sampler = build_train_loader(args, plan.train, ctx, seed=args.seed)
    val_loader = build_eval_loader(args, plan.val, plan.train.class_to_idx, ctx) if plan.val else None
    mixup = build_mixup(args, plan.num_classes)
    loss_fn = build_train_loss(args, mixup)

    # first writes of the run (main process only)
    step_log = CsvLog(os.path.join(args.output, "steps.csv"), STEP_FIELDS, enabled=ctx.is_main)
    epoch_log = CsvLog(os.path.join(args.output, "epochs.csv"), EPOCH_FIELDS, enabled=ctx.is_main)
    if ctx.is_main:
        os.makedirs(args.output, exist_ok=True)
        _dump_config(args, os.path.join(args.output, "config.yaml"))
        step_log.keep_epochs_before(start_epoch)
        epoch_log.keep_epochs_before(start_epoch)
    n_params = sum(p.numel() for p in model.parameters())
    _say(ctx, f"{args.model}: {n_params / 1e6:.2f}M parameters, {plan.num_classes} classes, "
              f"{plan.train.num_images} training images, {ctx.world_size} process(es) on {ctx.device.type}, "
              f"global batch {lrs['global_batch']}, peak lr {lrs['lr']:.3g}")

    summary: dict[str, Any] = dict(model=args.model, num_params=n_params, world_size=ctx.world_size,
                                   global_batch=lrs["global_batch"], lr=lrs["lr"], output=args.output)
    stats: Optional[EpochStats] = None
    for epoch in range(start_epoch, args.epochs):
        seed_everything(epoch_seed(args.seed, epoch, ctx.rank))
        sampler.set_epoch(epoch)
        stats = train_one_epoch(
            model=train_model, loader=train_loader, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
            mixup=mixup, ema=ema, scaler=scaler, args=args, epoch=epoch, num_updates=num_updates, ctx=ctx,
            on_log=lambda rec: step_log.append(vars(rec)), progress=args.progress and ctx.is_main)
        num_updates = stats.num_updates
        row: dict[str, Any] = dict(epoch=epoch, step=num_updates, lr=optimizer.param_groups[0]["lr"],
                                   train_loss=stats.loss, images_per_s=stats.images_per_s, seconds=stats.seconds,
                                   max_mem_gb=stats.max_mem_gb)
        last_epoch = epoch + 1 == args.epochs
        improved = False
        if val_loader is not None and ((epoch + 1) % args.eval_interval == 0 or last_epoch):
            metrics = evaluate(model, val_loader, args, ctx)
            row.update({f"eval_{k}": v for k, v in metrics.items()})
            if ema is not None:
                row.update({f"ema_eval_{k}": v for k, v in evaluate(ema.module, val_loader, args, ctx).items()})
            improved = metrics["top1"] > best_top1
            best_top1 = max(best_top1, metrics["top1"])
        _say(ctx, " ".join([f"epoch {epoch + 1}/{args.epochs}", f"loss {stats.loss:.4f}"]
                           + [f"{k} {row[k]:.2f}" for k in ("eval_top1", "ema_eval_top1") if k in row]
                           + [f"{stats.images_per_s:.1f} img/s"]))
        if ctx.is_main:
            # log first, checkpoint second: a kill in between only repeats this epoch on resume
            epoch_log.append(row)
            state = ckpt.training_state(
                model_name=args.model, model_kwargs=args.model_kwargs, num_classes=plan.num_classes,
                class_to_idx=plan.train.class_to_idx, model=model, optimizer=optimizer, ema=ema, scaler=scaler,
                epoch=epoch + 1, num_updates=num_updates, best_top1=best_top1, args=args)
            ckpt.save_atomically(state, os.path.join(args.output, ckpt.LAST))
            if improved:
                shutil.copyfile(os.path.join(args.output, ckpt.LAST), os.path.join(args.output, ckpt.BEST))
            summary.update(epochs_done=epoch + 1, updates=num_updates, best_top1=best_top1, last=row)
            write_json(os.path.join(args.output, "summary.json"), summary)
        barrier(ctx)
    if stats is None:
        _say(ctx, f"nothing to do: {args.output} already holds {start_epoch} of {args.epochs} epochs")
    return FitResult(model=model, ema=ema.module if ema is not None else None, summary=summary)
