"""Training-step time, peak memory and generation speed of the video predictors (ConvS5 vs ConvLSTM).

    # the paper's comparison: 64x64 frames, 300-frame clips, batch 8, on a GPU
    python tools/benchmark_convs5.py --models convs5_moving_mnist convlstm_moving_mnist --seq-len 300
    # reduced width on the CPU (peak resident memory of a 300-frame training step)
    python tools/benchmark_convs5.py --device cpu --models test_convs5 --seq-len 300 --batch-size 1 \
        --image-size 64 --gen-frames 0 --repeats 1

For each model: one training step (teacher-forced loss, backward, AdamW) timed over --repeats after a
warm-up, the peak memory (CUDA allocator, or the process's peak RSS on the CPU), and the frames per second
of autoregressive generation in step mode after --context frames. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import sys
import time

import timm
import torch

import vssm  # noqa: F401  (registers the models)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["convs5_moving_mnist", "convlstm_moving_mnist"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seq-len", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed training steps (median)")
    p.add_argument("--context", type=int, default=100, help="context frames before generation")
    p.add_argument("--gen-frames", type=int, default=100, help="frames to generate (0: skip)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="autocast dtype on CUDA")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB


def bench(name: str, args) -> dict:
    device = torch.device(args.device)
    model = timm.create_model(name).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    clip = torch.rand(args.batch_size, args.seq_len, model.in_chans, args.image_size, args.image_size,
                      device=device) * 2 - 1
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def train_step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = model.loss(clip)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    train_step()                          # warm-up (kernel compilation, allocator)
    _sync(device)
    times = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        train_step()
        _sync(device)
        times.append(time.perf_counter() - began)
    result = {"model": name, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "date": datetime.date.today().isoformat(), "params": sum(p.numel() for p in model.parameters()),
              "batch": args.batch_size, "seq_len": args.seq_len, "image_size": args.image_size, "amp": args.amp,
              "train_step_s": round(statistics.median(times), 4), "peak_memory_mib": round(_peak_memory_mib(device))}
    if args.gen_frames > 0:
        model.eval()
        context = min(args.context, args.seq_len)
        total = context + args.gen_frames
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            model.generate(clip[:, :context], context, context + 2)        # warm-up
            _sync(device)
            began = time.perf_counter()
            model.generate(clip[:, :context], context, total)
            _sync(device)
        elapsed = time.perf_counter() - began
        result["generated_frames_per_s"] = round(args.batch_size * args.gen_frames / elapsed, 2)
        result["generation_s"] = round(elapsed, 3)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    for name in args.models:
        print(json.dumps(bench(name, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
