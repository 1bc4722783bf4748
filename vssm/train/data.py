"""ImageFolder data for the trainer: checks with clear errors, timm datasets and transforms, samplers.

Layout: ``DATA_DIR/<split>/<class name>/<image>``; classes are the sorted folder names of the train split and
the evaluation split reuses that mapping.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_dataset, create_transform
from timm.data.distributed_sampler import RepeatAugSampler
from timm.data.readers.img_extensions import get_img_extensions
from timm.data.readers.reader_image_folder import find_images_and_targets
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from .distributed import DistContext


@dataclass(frozen=True)
class FolderSummary:
    root: str
    class_to_idx: dict[str, int]
    num_images: int


def inspect_image_folder(root: str, min_classes: int = 2) -> FolderSummary:
    """Check that ``root`` is a usable ImageFolder split and return its classes.

    Errors name the folder and what is wrong: missing, no images, images outside class folders, too few classes.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder does not exist: {root}")
    samples, class_to_idx = find_images_and_targets(root)
    if not samples:
        exts = " ".join(sorted(get_img_extensions()))
        raise ValueError(f"no images found under {root} (looked for {exts} in one sub-folder per class)")
    if "" in class_to_idx:
        loose = sum(1 for path, _ in samples if os.path.dirname(path) == root.rstrip(os.sep))
        raise ValueError(f"{loose} image(s) sit directly in {root}; put each image in a sub-folder named "
                         f"after its class ({root}/<class>/<image>)")
    if len(class_to_idx) < min_classes:
        raise ValueError(f"a classifier needs at least {min_classes} classes, found {len(class_to_idx)} "
                         f"({', '.join(class_to_idx)}) in {root}")
    return FolderSummary(root=root, class_to_idx=dict(class_to_idx), num_images=len(samples))


def check_val_classes(train: FolderSummary, val: FolderSummary) -> None:
    extra = sorted(set(val.class_to_idx) - set(train.class_to_idx))
    if extra:
        raise ValueError(f"evaluation split {val.root} has classes missing from the training split: {extra[:10]}")


def _train_sampler(dataset, ctx: DistContext, seed: int, aug_repeats: int) -> Sampler[int]:
    if aug_repeats > 0:  # DeiT/Vim "repeated augmentation": each image several times per epoch, on different ranks
        return RepeatAugSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, num_repeats=aug_repeats)
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)


def check_batch_fits(num_images: int, batch_size: int, ctx: DistContext, aug_repeats: int = 0) -> int:
    """Number of full steps per epoch; an error if the global batch is larger than the training set."""
    per_rank = len(_train_sampler(range(num_images), ctx, 0, aug_repeats))
    steps = per_rank // batch_size
    if steps == 0:
        raise ValueError(f"the global batch ({batch_size} images x {ctx.world_size} process(es) = "
                         f"{batch_size * ctx.world_size}) is larger than the training set ({num_images} images"
                         f"{f', {per_rank} per process per epoch with repeated augmentation' if aug_repeats else ''}); "
                         f"lower --batch-size")
    return steps


class ShardSampler(Sampler[int]):
    """Evaluation indices ``rank::world_size`` with no padding, so summed metrics count every image once."""

    def __init__(self, num_samples: int, rank: int, world_size: int):
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _norm_stats(args: argparse.Namespace) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = tuple(args.mean) if args.mean else IMAGENET_DEFAULT_MEAN
    std = tuple(args.std) if args.std else IMAGENET_DEFAULT_STD
    return mean, std


def build_train_loader(
    args: argparse.Namespace, folder: FolderSummary, ctx: DistContext, seed: int
) -> tuple[DataLoader, Sampler[int]]:
    """Shuffled, augmented training loader; every rank reads a disjoint share of one global permutation.

    The sampler is a DistributedSampler even on one process, so one process with batch 2B and two with B each
    see the same global batches (their union) step for step.
    """
    mean, std = _norm_stats(args)
    transform = create_transform(
        args.input_size, is_training=True, no_aug=args.no_aug, scale=tuple(args.scale), ratio=tuple(args.ratio),
        hflip=args.hflip, color_jitter=args.color_jitter, auto_augment=args.aa or None,
        interpolation=args.interpolation, mean=mean, std=std,
        re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
    )
    dataset = create_dataset("", root=folder.root, search_split=False, class_map=folder.class_to_idx,
                             is_training=True, transform=transform)
    sampler = _train_sampler(dataset, ctx, seed, args.aug_repeats)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, num_workers=args.workers,
        pin_memory=args.pin_mem and ctx.device.type == "cuda",
        # fresh workers every epoch: their seeds come from the RNG re-seeded at each epoch start, so a resumed
        # run augments exactly as an uninterrupted one (persistent workers would carry their RNG over)
        persistent_workers=False,
    )
    return loader, sampler


def build_eval_loader(args: argparse.Namespace, folder: FolderSummary, class_to_idx: dict[str, int],
                      ctx: DistContext) -> DataLoader:
    mean, std = _norm_stats(args)
    transform = create_transform(args.input_size, is_training=False, interpolation=args.interpolation,
                                 mean=mean, std=std, crop_pct=args.crop_pct)
    dataset = create_dataset("", root=folder.root, search_split=False, class_map=class_to_idx, transform=transform)
    return DataLoader(
        dataset, batch_size=args.eval_batch_size or args.batch_size,
        sampler=ShardSampler(len(dataset), ctx.rank, ctx.world_size), num_workers=args.workers,
        pin_memory=args.pin_mem and ctx.device.type == "cuda",
    )


def to_device(images: torch.Tensor, targets: torch.Tensor, ctx: DistContext, channels_last: bool):
    images = images.to(ctx.device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(ctx.device, non_blocking=True)
