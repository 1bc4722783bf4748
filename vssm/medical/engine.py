"""Train and evaluate a segmentation network on the MNI152 template split, from a MONAI bundle-style config.

A config (JSON, read by ``monai.bundle.ConfigParser``) names the network, loss and optimizer with
``_target_`` entries and holds the data / train / infer settings; see ``configs/medical/``. ``run`` trains for
``train#steps`` steps on random crops of the training slabs, evaluates the held-out slab with
``sliding_window_inference``, scores Dice per class next to the multi-Otsu baseline on the same voxels, and
writes ``metrics.json``, ``checkpoint.pt`` and ``overlay.png`` to the output folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Sequence

import torch

from .baseline import otsu_segmentation
from .checks import check_labels
from .data import CLASS_NAMES, TemplateVolume, axial_slices, make_volume, slab_split
from .metrics import dice_per_class

__all__ = ["load_config", "prepare_data", "train_loader", "evaluate", "run", "save_overlay", "lr_factor"]


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_config(paths: Sequence[str] | str, overrides: Sequence[str] = ()):
    """A ``ConfigParser`` over one or more JSON/YAML files (later files replace earlier top-level keys), with
    ``key#sub=value`` overrides (values parsed as JSON when they can be)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(list(paths) if not isinstance(paths, str) else paths)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"overrides look like 'train#steps=100', got {item!r}")
        key, value = item.split("=", 1)
        parser[key.strip()] = _parse_value(value.strip())
    return parser


def prepare_data(data_cfg: dict, spatial_dims: int, crop_size: Sequence[int]):
    """Training items (data dictionaries) and the held-out test slab for one setting."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    volume = make_volume(data_cfg.get("setting", "clean"), spacing=data_cfg.get("spacing", 2.0),
                         seed=data_cfg.get("seed", 0), bias_coeff=tuple(data_cfg.get("bias_coeff", (0.0, 0.1))),
                         noise_std=data_cfg.get("noise_std", 0.1))
    thickness = crop_size[-1] if spatial_dims == 3 else 1
    train, test = slab_split(volume, tuple(data_cfg.get("test_slab", (0.36, 0.64))), thickness)
    if spatial_dims == 3:
        items = [s.as_dict() for s in train]
    else:
        items = [item for s in train for item in axial_slices(s)]
    return items, test


def train_loader(items: list[dict], crop_size: Sequence[int], batch_size: int, samples_per_item: int,
                 flip: bool = True):
    """A MONAI DataLoader of random crops: ``samples_per_item`` crops per item, half centred on tissue."""
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureTyped, RandCropByPosNegLabeld, RandFlipd

    keys = ["image", "label"]
    transforms = [RandCropByPosNegLabeld(keys, label_key="label", spatial_size=list(crop_size), pos=1, neg=1,
                                         num_samples=samples_per_item)]
    if flip:  # left-right: the template is symmetric, so this only regularises
        transforms.append(RandFlipd(keys, prob=0.5, spatial_axis=0))
    transforms.append(EnsureTyped(keys, track_meta=False))  # plain tensors: the networks slice batches
    dataset = Dataset([{k: item[k] for k in keys} for item in items], transform=Compose(transforms))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)


def _endless(loader):
    while True:
        yield from loader


def _predict_volume(network, image: torch.Tensor, spatial_dims: int, roi_size, sw_batch_size: int,
                    overlap: float, device) -> torch.Tensor:
    """Label map (1, X, Y, Z) for a channel-first image (1, X, Y, Z): a 3-D sliding window, or one 2-D
    sliding window per axial slice."""
    from monai.inferers import sliding_window_inference

    def predictor(x):
        out = network(x)
        return out[0] if isinstance(out, (list, tuple)) else out

    with torch.no_grad():
        if spatial_dims == 3:
            logits = sliding_window_inference(image[None].to(device), roi_size, sw_batch_size, predictor,
                                              overlap=overlap)
            return logits.argmax(1).cpu()
        slices = image.permute(3, 0, 1, 2)                    # (Z, 1, X, Y): the axial slices as a batch
        logits = sliding_window_inference(slices.to(device), roi_size, sw_batch_size, predictor, overlap=overlap)
        return logits.argmax(1).permute(1, 2, 0)[None].cpu()


def evaluate(network, test: TemplateVolume, spatial_dims: int, roi_size, sw_batch_size: int = 4,
             overlap: float = 0.5, num_classes: int = 3, device="cpu") -> dict:
    """Dice per class of the network and of the multi-Otsu baseline on the held-out slab."""
    was_training = network.training
    network.eval()
    pred = _predict_volume(network, test.image, spatial_dims, roi_size, sw_batch_size, overlap, device)
    network.train(was_training)
    if pred.shape != test.label.shape:
        raise RuntimeError(f"sliding-window output {tuple(pred.shape)} lost the input shape {tuple(test.label.shape)}")
    baseline = otsu_segmentation(test.image, test.mask)
    names = CLASS_NAMES[1:num_classes]
    net_dice = dice_per_class(pred, test.label, num_classes)
    base_dice = dice_per_class(baseline, test.label, num_classes)
    return {
        "network": dict(zip(names, net_dice)),
        "baseline_multi_otsu": dict(zip(names, base_dice)),
        "network_mean": sum(net_dice) / len(net_dice),
        "baseline_mean": sum(base_dice) / len(base_dice),
        "prediction": pred,
        "baseline_prediction": baseline,
    }


def save_overlay(path: str, test: TemplateVolume, pred: torch.Tensor, baseline: torch.Tensor,
                 num_slices: int = 3) -> None:
    """A PNG of a few axial slices of the test slab: input, label, network, baseline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = test.image.shape[-1]
    zs = [int(round((i + 1) * depth / (num_slices + 1))) for i in range(num_slices)]
    columns = [("input", test.image), ("label", test.label), ("network", pred), ("multi-Otsu", baseline)]
    fig, axes = plt.subplots(num_slices, len(columns), figsize=(2.4 * len(columns), 2.6 * num_slices))
    for row, z in enumerate(zs):
        for col, (title, vol) in enumerate(columns):
            ax = axes[row][col]
            img = vol[0, :, :, z].float().T.flip(0)  # (X, Y) of the RAS array -> rows = anterior at the top
            if col == 0:
                ax.imshow(img.numpy(), cmap="gray")
            else:
                ax.imshow(test.image[0, :, :, z].T.flip(0).numpy(), cmap="gray")
                ax.imshow(torch.where(img > 0, img, torch.nan).numpy(), cmap="viridis", vmin=0, vmax=2, alpha=0.55)
            ax.set_axis_off()
            ax.set_title(f"{title} z={test.z_range[0] + z}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def lr_factor(step: int, steps: int, warmup_steps: int = 0) -> float:
    """The learning-rate multiplier at ``step``: linear warmup over the first ``warmup_steps`` steps (from
    ``1 / warmup_steps`` to 1), otherwise cosine from 1 at step 0 to 0 at ``steps``."""
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(steps, 1)))


def _save_checkpoint(path, network, optimizer, scheduler, step):
    tmp = path + ".tmp"
    torch.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)


def run(parser, out_dir: str | None = None, resume: bool = False, device: str = "cpu",
        progress: bool = True) -> dict:
    """Train (``train#steps`` > 0) then evaluate; returns the metrics (also written to ``metrics.json``)."""
    from monai.losses import DeepSupervisionLoss
    from monai.utils import set_determinism
    from tqdm.auto import tqdm

    def cfg(key, default=None):
        return parser.get_parsed_content(key) if parser.get(key) is not None else default

    spatial_dims = int(cfg("spatial_dims"))
    crop_size = list(cfg("crop_size"))
    train_cfg = dict(cfg("train", {}))
    infer_cfg = dict(cfg("infer", {}))
    num_classes = int(cfg("num_classes", 3))
    seed = int(train_cfg.get("seed", 0))
    set_determinism(seed)

    items, test = prepare_data(dict(cfg("data", {})), spatial_dims, crop_size)
    network = parser.get_parsed_content("network_def").to(device)
    optimizer = parser.get_parsed_content("optimizer")
    loss_fn = DeepSupervisionLoss(parser.get_parsed_content("loss"))
    steps = int(train_cfg.get("steps", 200))
    warmup = int(train_cfg.get("warmup_steps", 0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup))
    amp = bool(train_cfg.get("amp", False))

    start, ckpt_path = 0, None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        ckpt_path = os.path.join(out_dir, "checkpoint.pt")
        if resume and os.path.exists(ckpt_path):
            state = torch.load(ckpt_path, map_location=device)
            network.load_state_dict(state["network"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start = int(state["step"])

    losses = []
    t0 = time.time()
    if steps > start:
        loader = _endless(train_loader(items, crop_size, int(train_cfg.get("batch_size", 2)),
                                       int(train_cfg.get("samples_per_item", 4))))
        network.train()
        bar = tqdm(range(start, steps), desc="train", disable=not progress, initial=start, total=steps)
        ckpt_every = int(train_cfg.get("checkpoint_every", 0))
        for step in bar:
            batch = next(loader)
            x, y = batch["image"].to(device), batch["label"].to(device)
            check_labels(y, num_classes)
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                out = network(x)
            out = [o.float() for o in out] if isinstance(out, (list, tuple)) else out.float()
            loss = loss_fn(out, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if ckpt_path and ckpt_every and (step + 1) % ckpt_every == 0:
                _save_checkpoint(ckpt_path, network, optimizer, scheduler, step + 1)
        if ckpt_path:
            _save_checkpoint(ckpt_path, network, optimizer, scheduler, steps)
    train_seconds = time.time() - t0

    result = evaluate(network, test, spatial_dims, infer_cfg.get("roi_size", crop_size),
                      int(infer_cfg.get("sw_batch_size", 4)), float(infer_cfg.get("overlap", 0.5)),
                      num_classes, device)
    metrics = {k: v for k, v in result.items() if not k.endswith("prediction")}
    metrics.update({
        "setting": dict(cfg("data", {})).get("setting", "clean"),
        "network_name": type(network).__name__,
        "parameters": sum(p.numel() for p in network.parameters()),
        "steps": steps, "train_seconds": round(train_seconds, 1),
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "losses": losses,
        "test_slab_z": list(test.z_range),
    })
    if out_dir is not None:
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        save_overlay(os.path.join(out_dir, "overlay.png"), test, result["prediction"], result["baseline_prediction"])
    return metrics
