"""Options of the classification trainer: one argparse parser, YAML configs that set its defaults.

A YAML config holds the same keys as the command-line options (``drop_path: 0.2`` for ``--drop-path 0.2``);
``_base_: other.yaml`` inherits another file (relative path) and overrides only what differs. The order of
precedence is: command line > config file > its bases > the parser defaults below.

The parser defaults are the Swin-style recipe of the official VMamba configs (300 epochs, AdamW, base lr 5e-4
per 512 images, 20 warm-up epochs, weight decay 0.05, grad clip 5, label smoothing 0.1, RandAugment
m9-mstd0.5, random erasing 0.25, mixup 0.8 / cutmix 1.0, EMA 0.9999), so a config only has to name the model
and its drop-path rate.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import yaml
from timm.utils import ParseKwargs

BASE_KEY = "_base_"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train an image classifier (any timm model; vssm models after `import vssm`) on an "
        "ImageFolder dataset, on one process or under torchrun.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-c", "--config", default="", help="YAML file whose keys set the defaults of these options")

    g = p.add_argument_group("data (ImageFolder: DATA_DIR/<split>/<class>/<image>)")
    g.add_argument("--data-dir", default="", help="dataset root holding the train and val split folders")
    g.add_argument("--train-split", default="train", help="sub-folder of the training images")
    g.add_argument("--val-split", default="val", help="sub-folder of the evaluation images ('' = no evaluation)")
    g.add_argument("--input-size", type=int, default=224, help="side of the square network input")
    g.add_argument("--crop-pct", type=float, default=0.875, help="evaluation centre-crop fraction")
    g.add_argument("--interpolation", default="bicubic")
    g.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation mean (default ImageNet)")
    g.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std (default ImageNet)")
    g.add_argument("--workers", type=int, default=8, help="data-loading processes per training process")
    g.add_argument("--pin-mem", action=argparse.BooleanOptionalAction, default=True)

    g = p.add_argument_group("augmentation")
    g.add_argument("--no-aug", action="store_true", help="resize and normalise only (no crop/flip/colour/erase)")
    g.add_argument("--scale", type=float, nargs=2, default=(0.08, 1.0), help="random-resized-crop area range")
    g.add_argument("--ratio", type=float, nargs=2, default=(3.0 / 4.0, 4.0 / 3.0))
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=0.4)
    g.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="RandAugment/AutoAugment policy ('' = off)")
    g.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.8, help="mixup alpha (0 = off)")
    g.add_argument("--cutmix", type=float, default=1.0, help="cutmix alpha (0 = off)")
    g.add_argument("--cutmix-minmax", type=float, nargs=2, default=None)
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch", choices=["batch", "pair", "elem"])
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    g.add_argument("--aug-repeats", type=int, default=0,
                   help="repeated augmentation: each image N times per epoch (DeiT/Vim use 3; 0 = off)")

    g = p.add_argument_group("model")
    g.add_argument("--model", default="", help="timm model name (vssm registers vmamba_*, vim_*, ...)")
    g.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs,
                   help="extra keyword arguments of timm.create_model, key=value")
    g.add_argument("--pretrained", action="store_true", help="start from the model's pretrained weights")
    g.add_argument("--pretrained-file", default="",
                   help="start from this weights file, mapped by the model's checkpoint_filter_fn (e.g. an "
                   "official release); implies --pretrained")
    g.add_argument("--num-classes", type=int, default=None, help="default: the number of class folders")
    g.add_argument("--drop", type=float, default=0.0, help="dropout before the classifier")
    g.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth rate")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and inputs")

    g = p.add_argument_group("optimisation (lr = lr_base * global batch / lr_base_size unless --lr is given)")
    g.add_argument("--batch-size", type=int, default=128, help="images per process and step")
    g.add_argument("--eval-batch-size", type=int, default=None, help="default: --batch-size")
    g.add_argument("--grad-accum-steps", type=int, default=1)
    g.add_argument("--epochs", type=int, default=300, help="total epochs, warm-up included")
    g.add_argument("--opt", default="adamw", help="timm optimizer name")
    g.add_argument("--opt-eps", type=float, default=None, help="default: the optimizer's own (1e-8 for AdamW)")
    g.add_argument("--opt-betas", type=float, nargs=2, default=None, help="default: the optimizer's own")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=0.05,
                   help="not applied to norms, biases and the parameters a model lists in no_weight_decay()")
    g.add_argument("--layer-decay", type=float, default=None, help="layer-wise lr decay (fine-tuning)")
    g.add_argument("--clip-grad", type=float, default=5.0, help="gradient clipping threshold (0/None = off)")
    g.add_argument("--clip-mode", default="norm", choices=["norm", "value", "agc"])
    g.add_argument("--lr", type=float, default=None, help="absolute peak lr; overrides the scaling rule")
    g.add_argument("--lr-base", type=float, default=5e-4, help="peak lr for a global batch of lr_base_size")
    g.add_argument("--lr-base-size", type=int, default=512)
    g.add_argument("--warmup-lr", type=float, default=5e-7, help="lr at the start of warm-up (per lr_base_size)")
    g.add_argument("--min-lr", type=float, default=5e-6, help="lr at the end of the cosine (per lr_base_size)")
    g.add_argument("--scale-warmup-min-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="scale warmup_lr and min_lr with the global batch too (Swin/VMamba do, DeiT/Vim don't)")
    g.add_argument("--sched", default="cosine", help="timm scheduler name, stepped every optimizer update")
    g.add_argument("--warmup-epochs", type=int, default=20)
    g.add_argument("--warmup-prefix", action=argparse.BooleanOptionalAction, default=True,
                   help="decay over epochs - warmup_epochs after warm-up (Swin/VMamba) instead of over all epochs")

    g = p.add_argument_group("model EMA")
    g.add_argument("--model-ema", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--model-ema-decay", type=float, default=0.9999)
    g.add_argument("--model-ema-warmup", action="store_true",
                   help="ramp the EMA decay up from 0 (useful for short runs)")

    g = p.add_argument_group("runtime")
    g.add_argument("--output", default="outputs/classification", help="run folder: checkpoints and logs")
    g.add_argument("--resume", default="", help="checkpoint to resume from (default: OUTPUT/last.pth if present)")
    g.add_argument("--auto-resume", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast dtype")
    g.add_argument("--device", default="auto", help="auto = this process's CUDA device if any, else cpu")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-interval", type=int, default=50, help="steps between rows of steps.csv")
    g.add_argument("--eval-interval", type=int, default=1, help="epochs between evaluations")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="tqdm progress bar on rank 0")
    return p


def _option_keys(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest not in ("help", "config")}


def load_config_file(path: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML config and its ``_base_`` chain into one flat dict (the file's own keys win)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    if path in _seen:
        raise ValueError(f"config inheritance loops back to {path}")
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"config {path} must be a mapping of option: value")
    merged: dict[str, Any] = {}
    bases = cfg.pop(BASE_KEY, [])
    for base in [bases] if isinstance(bases, str) else bases:
        merged.update(load_config_file(os.path.join(os.path.dirname(path), base), _seen + (path,)))
    merged.update(cfg)
    return merged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line -> options, with the ``--config`` file (and its bases) as defaults."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        cfg = load_config_file(pre.config)
        unknown = sorted(set(cfg) - _option_keys(parser))
        if unknown:
            raise ValueError(f"config {pre.config} has unknown option(s) {unknown}; "
                             f"see `tools/train_classification.py --help` (keys use underscores)")
        parser.set_defaults(**cfg)
    return parser.parse_args(argv)


def options(**overrides: Any) -> argparse.Namespace:
    """The defaults with some options replaced, for calling the trainer from Python.

    ``config=`` may name a YAML file; other keyword arguments override it.
    """
    parser = build_parser()
    unknown = sorted(set(overrides) - _option_keys(parser) - {"config"})
    if unknown:
        raise ValueError(f"unknown trainer option(s) {unknown}")
    args = parse_args(["--config", overrides["config"]] if overrides.get("config") else [])
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def scaled_learning_rates(args: argparse.Namespace, world_size: int) -> dict[str, float]:
    """Peak, warm-up-start and final lr for this run's global batch (the official recipes' linear rule)."""
    global_batch = args.batch_size * world_size * args.grad_accum_steps
    factor = global_batch / args.lr_base_size
    lr = args.lr if args.lr is not None else args.lr_base * factor
    extra = factor if args.scale_warmup_min_lr else 1.0
    return dict(lr=lr, warmup_lr=args.warmup_lr * extra, min_lr=args.min_lr * extra, global_batch=global_batch)


def plain(value: Any) -> Any:
    """Tuples -> lists, recursively: options from YAML (lists) and the command line (tuples) compare equal,
    and YAML / ``weights_only`` checkpoints can hold them."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
