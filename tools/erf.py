"""Effective receptive field (ERF) maps of any registered model, as a PNG heat map or a grid of them.

    python tools/erf.py --models vmamba_tiny vim_tiny_patch16_224 resnet50 --images digits --out erf.png
    python tools/erf.py --models vmamba_tiny --checkpoint run/last.pth.tar --out erf_trained.png

The ERF is the gradient of the central activation of the last feature map (summed over channels) with
respect to the input, in absolute value, summed over input channels and averaged over images, then shown as
log10(ERF / max) on a fixed [-6, 0] scale, so weak long-range contributions stay visible. ``--images digits`` uses the handwritten
digits bundled with scikit-learn (upsampled), ``--images random`` Gaussian noise.
"""

from __future__ import annotations

import argparse

import numpy as np
import timm
import torch
import torch.nn.functional as F
from tqdm import tqdm

import vssm  # noqa: F401  (registers our models)


def input_batches(kind: str, count: int, size: int, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if kind == "digits":
        from sklearn.datasets import load_digits

        digits = torch.tensor(load_digits().images[:count], dtype=torch.float32) / 16.0
        images = F.interpolate(digits[:, None], size=(size, size), mode="bilinear", align_corners=False)
        images = (images.expand(-1, 3, -1, -1) - 0.45) / 0.25
    elif kind == "random":
        images = torch.randn(count, 3, size, size, generator=g)
    else:
        raise ValueError(f"--images must be 'digits' or 'random', got {kind!r}")
    yield from images.split(batch)


def last_feature_map(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The deepest NCHW feature map: forward_intermediates gives it for hierarchical and ViT-like models."""
    if hasattr(model, "forward_intermediates"):
        maps = model.forward_intermediates(x, indices=1, intermediates_only=True)
        return maps[-1]
    out = model.forward_features(x)
    if out.dim() != 4:
        raise ValueError(f"{type(model).__name__}: no NCHW feature map to take the ERF of (got {tuple(out.shape)})")
    return out


def effective_receptive_field(model: torch.nn.Module, batches) -> np.ndarray:
    """Mean |d center / d input| over images, summed over input channels: (H, W)."""
    model.eval()
    total, n = None, 0
    for x in batches:
        x = x.clone().requires_grad_(True)
        fmap = last_feature_map(model, x)
        h, w = fmap.shape[-2:]
        fmap[:, :, h // 2, w // 2].sum().backward()
        grad = x.grad.abs().sum(1).sum(0)
        total = grad if total is None else total + grad
        n += x.shape[0]
    return (total / n).numpy()


FLOOR = 1e-6  # relative gradient shown as the bottom of the colour scale


def log_scaled(erf: np.ndarray) -> np.ndarray:
    return np.log10(erf / max(float(erf.max()), 1e-30) + FLOOR)


def area_fraction(erf: np.ndarray, energy: float = 0.2) -> float:
    """Smallest fraction of the image holding ``energy`` of the ERF mass (a scalar to compare models by)."""
    values = np.sort(erf.ravel())[::-1]
    cumulative = np.cumsum(values) / values.sum()
    return float((np.searchsorted(cumulative, energy) + 1) / values.size)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="registered timm model names (ours or timm's)")
    parser.add_argument("--checkpoint", default=None, help="weights for a single model (after training)")
    parser.add_argument("--images", default="digits", choices=("digits", "random"))
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default="erf.png")
    args = parser.parse_args()
    if args.checkpoint and len(args.models) != 1:
        raise SystemExit("--checkpoint applies to one model; pass a single --models name")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.models), figsize=(3.2 * len(args.models), 3.4), squeeze=False)
    for ax, name in zip(axes[0], tqdm(args.models, desc="ERF", unit="model")):
        try:
            model = timm.create_model(name, pretrained=False, num_classes=0)
        except RuntimeError as err:
            raise SystemExit(f"unknown model {name!r}: {err}") from err
        if args.checkpoint:
            state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
            state = state.get("state_dict_ema") or state.get("state_dict") or state.get("model") or state
            missing, unexpected = model.load_state_dict(state, strict=False)
            unexpected = [k for k in unexpected if not k.startswith("head")]
            if unexpected or [k for k in missing if not k.startswith("head")]:
                raise SystemExit(f"{args.checkpoint} does not fit {name}: missing {missing}, unexpected {unexpected}")
        torch.manual_seed(0)
        erf = effective_receptive_field(model, input_batches(args.images, args.count, args.size, args.batch))
        image = ax.imshow(log_scaled(erf), cmap="RdYlGn", vmin=np.log10(FLOOR), vmax=0.0)
        ax.set_title(f"{name}\n20% mass in {100 * area_fraction(erf):.1f}% of pixels", fontsize=8)
        ax.axis("off")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log10 relative gradient")
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
