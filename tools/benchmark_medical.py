"""GPU time and peak memory of the medical networks, forward+backward under bf16 autocast, with the Triton
routed scan and with the PyTorch reference scan (benchmark, not a test).

    python tools/benchmark_medical.py [--json out.json]

SegMamba at 128^3 (batch 2, 4 -> 4 channels, the BraTS setting) and VM-UNet at 256x256 (batch 32, 3 -> 1,
the ISIC setting): one training step = forward, a mean-squared loss on the logits, backward; timed with
CUDA events after warm-up, median of the repeats, peak memory from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from benchmark import _timed

from vssm.medical import SegMamba, vmunet_isic

CASES = {
    "segmamba_128^3_b2": (lambda: SegMamba(in_channels=4, out_channels=4), (2, 4, 128, 128, 128)),
    "vmunet_256^2_b32": (lambda: vmunet_isic(), (32, 3, 256, 256)),
}


def step_time(model, x, repeats, warmup=2):
    """Milliseconds per training step: the median of ``repeats`` single-step windows (tools/benchmark.py)."""

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    return _timed(step, iters=1, warmup=warmup, windows=repeats) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["triton", "reference"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name, (build, shape) in CASES.items():
        torch.manual_seed(0)
        model = build().cuda().train()
        x = torch.randn(*shape, device="cuda")
        for backend in args.backends:
            os.environ["VSSM_SCAN_BACKEND"] = backend
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                ms = step_time(model, x, args.repeats)
                row = dict(step_ms=round(ms, 2), peak_gb=round(torch.cuda.max_memory_allocated() / 1e9, 2))
            except torch.OutOfMemoryError:
                row = dict(step_ms=None, peak_gb="OOM")
            results[f"{name} {backend}"] = row
            print(name, backend, row, flush=True)
        os.environ.pop("VSSM_SCAN_BACKEND", None)
        del model, x
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
