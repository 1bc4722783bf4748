"""The first thing to run: build every vssm model, classify a real photo, and report params / FLOPs / time.

    python tools/demo.py [--models 'vmamba*'] [--repeats 1]

The photo is scikit-learn's bundled ``china.jpg`` (no download). Models are untrained here (no weights can
be fetched), so the point is the table: our parameter counts next to the official ones, FLOPs with the scan
counted, and CPU latency at batch 1 with the PyTorch reference scan.
"""

from __future__ import annotations

import argparse
import platform

import timm
import torch
from sklearn.datasets import load_sample_image
from PIL import Image
from timm.data import create_transform, resolve_data_config
from tqdm import tqdm

import vssm
from vssm.complexity import count_flops, count_params, measure_latency
from vssm.registry import list_models
from vssm.zoo import OFFICIAL


def image_models(pattern: str | None) -> list[str]:
    """Our models that take a single RGB image (video models take clips and are skipped here)."""
    names = []
    for name in list_models(pattern):
        if name.startswith("test_"):  # timm-style tiny test configs
            continue
        cfg = timm.get_pretrained_cfg(name)
        if cfg is not None and len(cfg.input_size) == 3 and cfg.input_size[0] == 3:
            names.append(name)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="wildcard over our model names (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="timed forward passes per model (median)")
    args = parser.parse_args()

    photo = Image.fromarray(load_sample_image("china.jpg"))
    names = image_models(args.models)
    print(f"vssm {vssm.__version__}, torch {torch.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads; photo {photo.size[0]}x{photo.size[1]}; {len(names)} models\n")
    rows = []
    for name in tqdm(names, desc="models", unit="model"):
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        transform = create_transform(**resolve_data_config({}, model=model))
        x = transform(photo).unsqueeze(0)
        with torch.no_grad():
            logits = model(x)
        official = OFFICIAL.get(name, {})
        params = count_params(model)
        rows.append(dict(
            name=name, size=f"{x.shape[-2]}x{x.shape[-1]}", params=params, official=official.get("params"),
            gflops=count_flops(model, x) / 1e9, official_gflops=official.get("gflops"),
            seconds=measure_latency(model, x, repeats=args.repeats), top=int(logits.argmax()),
        ))
    print("\n| model | input | params | official params | GFLOPs | official GFLOPs | CPU s/img |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        match = "" if r["official"] is None else (" (equal)" if r["params"] == r["official"] else " (DIFFERS)")
        off = "-" if r["official"] is None else f"{r['official']:,}{match}"
        off_fl = "-" if r["official_gflops"] is None else f"{r['official_gflops']:.1f}"
        print(f"| {r['name']} | {r['size']} | {r['params']:,} | {off} | {r['gflops']:.2f} | {off_fl} | "
              f"{r['seconds']:.2f} |")
    print("\nGFLOPs: one multiply-add = one FLOP (the official tables' convention), scans by mamba_ssm's formula.")


if __name__ == "__main__":
    main()
