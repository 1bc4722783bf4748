"""Where a model's GPU time goes: the top CUDA kernels of an inference pass and of a training step under
bf16 autocast (torch.profiler), batch 128 at 224 by default (benchmark, not a test).

    python tools/profile_model.py vmamba_tiny [--batch 128] [--rows 25]
"""

from __future__ import annotations

import argparse

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import vssm  # noqa: F401  (registers the models)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--img", type=int, default=224)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    model = timm.create_model(args.model).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, args.img, args.img, device="cuda")
    y = torch.randint(0, 1000, (args.batch,), device="cuda")

    def infer():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model.eval()(x)

    def train():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model.train()(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for name, fn in (("inference", infer), ("training step", train)):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
        print(f"\n=== {args.model} {name}, bf16, batch {args.batch} (3 iterations) ===")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=70))


if __name__ == "__main__":
    main()
