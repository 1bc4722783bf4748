"""Sweep the fused scan kernels' variants and tiles on a GPU (benchmark, not a test).

Each config is a set of environment variables read by ``kernels/triton/launch.py``
(``VSSM_SCAN_FWD_KERNEL``, ``VSSM_SCAN_TILE``, ``VSSM_SCAN_BWD_KERNEL``, ``VSSM_SCAN_BWD_TILE``,
``VSSM_SCAN_BWD_MAXNREG``, ``VSSM_SCAN_BWD_SPLIT``, ``VSSM_SCAN_BC_VECTOR``); every config is timed forward and
forward+backward on the stage shapes of ``tools/benchmark_scan.py``, with the same inputs and protocol.

    python tools/sweep_scan_kernels.py --stages 56 vim197 \\
        --config "VSSM_SCAN_FWD_KERNEL=nloop VSSM_SCAN_TILE=16,32,4" --config "..."
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmark_scan import STAGES, fused, stage_inputs, time_it

STAGE_KEYS = {"56": (56, 56), "28": (28, 28), "14": (14, 14), "7": (7, 7), "vim197": (197,), "vim730": (730,)}
KNOBS = ("VSSM_SCAN_FWD_KERNEL", "VSSM_SCAN_TILE", "VSSM_SCAN_BWD_KERNEL", "VSSM_SCAN_BWD_TILE",
         "VSSM_SCAN_BWD_MAXNREG", "VSSM_SCAN_BWD_SPLIT", "VSSM_SCAN_BC_VECTOR")


def apply(config: str) -> None:
    for knob in KNOBS:
        os.environ.pop(knob, None)
    for item in config.split():
        key, value = item.split("=", 1)
        os.environ[key] = value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", nargs="+", default=["56", "vim197"], choices=sorted(STAGE_KEYS))
    parser.add_argument("--N", nargs="+", type=int, default=None, help="only these state sizes")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--fwd-only", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    grids = {STAGE_KEYS[s] for s in args.stages}
    print(f"device {torch.cuda.get_device_name()}; torch {torch.__version__}", flush=True)
    for name, routes, grid, batch, dim, N, per_route, z in STAGES:
        if grid not in grids or (args.N and N not in args.N):
            continue
        x = stage_inputs(routes, grid, batch, dim, N, per_route=per_route, z=z)
        for config in args.config:
            apply(config)
            t0 = time.time()
            try:
                f = time_it(fused, x, routes, False)
                fb = float("nan") if args.fwd_only else time_it(fused, x, routes, True)
                print(f"sweep {name:24} [{config}]  fwd {f:8.3f} ms  fwd+bwd {fb:8.3f} ms  "
                      f"({time.time() - t0:.0f}s incl. compile)", flush=True)
            except Exception as err:  # a config that does not compile or fit is reported, not fatal
                print(f"sweep {name:24} [{config}]  failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
            torch.cuda.empty_cache()
        del x
        torch.cuda.empty_cache()
    apply("")


if __name__ == "__main__":
    main()
