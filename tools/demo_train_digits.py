#!/usr/bin/env python
"""README demo: train a small VMamba on real handwritten digits on a CPU in a few minutes.

scikit-learn ships 1,797 8x8 digit images (``sklearn.datasets.load_digits``). This script upsamples them,
splits them 80/20 with a fixed seed, writes them as an ImageFolder, trains with the classification trainer
(``configs/classification/demo/digits_vmamba.yaml``), prints the test accuracy and writes a loss/accuracy plot.

    python tools/demo_train_digits.py                 # ~ a few minutes on 2 CPU cores
    python tools/demo_train_digits.py --epochs 3      # shorter
"""

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "classification", "demo", "digits_vmamba.yaml")


def write_digits_image_folder(root: str, image_size: int, test_fraction: float = 0.2, seed: int = 0) -> dict:
    """load_digits -> ROOT/{train,val}/<digit>/<index>.png, grey levels 0..16 scaled to 0..255, upsampled."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    idx_train, idx_test = train_test_split(np.arange(len(digits.target)), test_size=test_fraction,
                                           random_state=seed, stratify=digits.target)
    for split, indices in (("train", idx_train), ("val", idx_test)):
        for i in indices:
            folder = os.path.join(root, split, str(digits.target[i]))
            os.makedirs(folder, exist_ok=True)
            img = Image.fromarray((digits.images[i] * (255.0 / 16.0)).astype(np.uint8), mode="L")
            img.resize((image_size, image_size), Image.BICUBIC).save(os.path.join(folder, f"{i:04d}.png"))
    return dict(train=len(idx_train), test=len(idx_test))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="outputs/demo_digits", help="folder for the images, the run and the plot")
    p.add_argument("--epochs", type=int, default=None, help="default: the config's")
    p.add_argument("--image-size", type=int, default=32, help="side the 8x8 digits are upsampled to")
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--seed", type=int, default=0, help="train/test split and training seed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 plus one data-loading process uses 2 cores without the stalls that "
                   "intra-op threads on such small tensors suffer on a busy machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    a = parse_args(argv)
    import torch

    from vssm.train import fit, options, plot_curves

    if a.threads:
        torch.set_num_threads(a.threads)

    data_dir = os.path.join(a.output, f"digits_{a.image_size}px_seed{a.seed}")
    if not os.path.isdir(data_dir):
        sizes = write_digits_image_folder(data_dir, a.image_size, seed=a.seed)
        print(f"wrote {sizes['train']} training and {sizes['test']} test digits to {data_dir}")
    run_dir = os.path.join(a.output, "run")
    overrides = dict(config=a.config, data_dir=data_dir, output=run_dir, input_size=a.image_size, seed=a.seed,
                     auto_resume=False, progress=not a.no_progress)
    if a.epochs is not None:
        overrides["epochs"] = a.epochs
        overrides["warmup_epochs"] = min(options(config=a.config).warmup_epochs, a.epochs - 1)
    start = time.perf_counter()
    result = fit(options(**overrides))
    minutes = (time.perf_counter() - start) / 60
    last = result.summary["last"]
    png = plot_curves(run_dir, os.path.join(a.output, "digits_curves.png"),
                      title=f"{result.summary['model']} ({result.summary['num_params'] / 1e6:.2f}M parameters) on "
                            f"scikit-learn digits, {a.image_size}x{a.image_size}")
    print(f"test accuracy: {last['eval_top1']:.2f}% (EMA weights: {last['ema_eval_top1']:.2f}%) on "
          f"{a.image_size}x{a.image_size} digits after {result.summary['epochs_done']} epochs, {minutes:.1f} min")
    print(f"curves: {png}; log: {run_dir}/epochs.csv")
    return dict(test_accuracy=last["eval_top1"], ema_test_accuracy=last["ema_eval_top1"], minutes=minutes, png=png)


if __name__ == "__main__":
    main(sys.argv[1:])
