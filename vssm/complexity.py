"""Parameters, FLOPs (the scan included) and latency of a model, as the demo, benchmarks and zoo report them."""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .kernels import count_scan_flops

__all__ = ["count_params", "count_flops", "flop_breakdown", "measure_latency"]


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_breakdown(model: torch.nn.Module, inputs: torch.Tensor) -> dict:
    """Forward FLOPs for ``inputs`` in the convention of the official model tables (fvcore's), split as
    ``dense`` (matmuls and convolutions, one multiply-add = one FLOP: torch's FlopCounterMode counts two, so its
    count is halved) and ``scan`` (every selective scan by mamba_ssm's formula, see ``vssm.kernels.flops``),
    with ``scan_calls``. Runs on any device, the meta device included.

    The scan is taken from the scan tally, whatever backend runs it; where FlopCounterMode also saw the
    registered Triton op, that share is dropped so nothing counts twice.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), count_scan_flops() as scan, counter:
        model(inputs)
    seen_scan = sum(n for op, n in counter.get_flop_counts().get("Global", {}).items() if "vssm" in str(op))
    return dict(dense=(counter.get_total_flops() - seen_scan) // 2, scan=scan.total, scan_calls=scan.calls)


def count_flops(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """Forward FLOPs for ``inputs``: dense + scan of :func:`flop_breakdown`."""
    flops = flop_breakdown(model, inputs)
    return int(flops["dense"] + flops["scan"])


def measure_latency(model: torch.nn.Module, inputs: torch.Tensor, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of one forward pass (no grad), after ``warmup`` passes."""
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            if inputs.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(inputs)
            if inputs.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)
