"""Model-level numbers for any registered model: parameters, FLOPs, CPU latency, GPU throughput and memory.

    python tools/benchmark.py vmamba_tiny [more models] [--img 224] [--batch 128] [--gpu] [--cpu-latency]
                              [--iters 20] [--json out.json]

FLOPs (batch 1, counted on the meta device, so anywhere and in seconds) follow the convention of the
official VMamba / Swin tables (fvcore's): one multiply-add of a conv or linear layer counts 1, i.e.
``torch.utils.flop_counter.FlopCounterMode`` total / 2, plus the selective scan with mamba_ssm's formula
(9 * B * L * D * N per route, + B * D * L for the D skip), tallied by ``vssm.kernels.flops.count_scan_flops``
from every scan call (FlopCounterMode does not see the scan: on meta tensors and in the reference it is
not one op). Elementwise ops (norms, activations) are not counted, as in fvcore.

GPU (``--gpu``, CUDA): images/s for inference (no grad, eval) and training (forward, cross-entropy backward
and an AdamW step, train mode) at ``--batch``, in fp32 and under bf16 autocast, channels-first NCHW input,
each with its peak memory (``torch.cuda.max_memory_allocated``, reset per measurement).
"""

import argparse
import json
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
import timm



def count_flops(name: str, img: int, **model_kwargs) -> dict:
    """GFLOPs for one image (see the module docstring for the convention), counted on the meta device."""
    from vssm.complexity import flop_breakdown
    model = timm.create_model(name, device="meta", **model_kwargs).eval()
    flops = flop_breakdown(model, torch.empty(1, 3, img, img, device="meta"))
    return dict(gflops=(flops["dense"] + flops["scan"]) / 1e9, gflops_dense=flops["dense"] / 1e9,
                gflops_scan=flops["scan"] / 1e9, scan_calls=flops["scan_calls"])


def cpu_latency(name: str, img: int, iters: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, img, img)
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(iters):
            model(x)
        dt = (time.perf_counter() - t) / iters
    return dict(cpu_latency_ms=dt * 1e3, cpu_threads=threads)


def _timed(fn, iters: int, warmup: int, windows: int = 1) -> float:
    """Seconds per call: ``warmup`` untimed calls, then ``windows`` windows of ``iters`` calls between two CUDA
    events; the median window (a single window by default, the protocol the zoo's numbers were taken with)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(windows):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / iters)
    return statistics.median(times)


def gpu_throughput(model: str | Callable[[], torch.nn.Module], img: int, batch: int, iters: int, warmup: int = 5,
                   compiled: bool = False, precisions=("fp32", "bf16"), windows: int = 1) -> dict:
    """Images/s and peak memory of a registered model (by name) or of any model a factory builds (the
    official code, ``tools/official/``), so both are measured the same way. Per precision a fresh model,
    NCHW ``randn`` input, labels in [0, 1000); inference = eval forward without grad, training = forward,
    cross-entropy, backward, AdamW step. With ``compiled`` the model runs under ``torch.compile`` (the scan
    stays one custom op in the graph) and the keys get a ``compiled_`` prefix."""
    make_model = (lambda: timm.create_model(model)) if isinstance(model, str) else model
    device = torch.device("cuda")
    out = {}
    prefix = "compiled_" if compiled else ""
    for precision in precisions:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
        x = torch.randn(batch, 3, img, img, device=device)
        y = torch.randint(0, 1000, (batch,), device=device)

        module = make_model().to(device).eval()
        net = torch.compile(module) if compiled else module
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

        def infer():
            with torch.no_grad(), autocast:
                net(x)

        sec = _timed(infer, iters, warmup, windows)
        out[f"{prefix}infer_{precision}_img_s"] = batch / sec
        out[f"{prefix}infer_{precision}_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9

        module.train()
        if compiled:  # a fresh graph for train mode (norm / dropout behaviour differs)
            torch._dynamo.reset()
            net = torch.compile(module)
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

        def train_step():
            with autocast:
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        sec = _timed(train_step, iters, warmup, windows)
        out[f"{prefix}train_{precision}_img_s"] = batch / sec
        out[f"{prefix}train_{precision}_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        del net, module, opt
        if compiled:
            torch._dynamo.reset()
    out["gpu"] = torch.cuda.get_device_name()
    return out


def main(argv=None):
    # vssm is imported here, not at the top, so that tools/official/ can use gpu_throughput (the protocol)
    # on a machine where only the official code is importable
    import vssm  # noqa: F401  (registers the models)
    from vssm.complexity import count_params

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--gpu", action="store_true", help="measure throughput and memory on CUDA")
    p.add_argument("--cpu-latency", action="store_true", help="batch-1 CPU latency (slow: reference scan)")
    p.add_argument("--cpu-iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--windows", type=int, default=1,
                   help="timing windows of --iters calls each; the median window is reported")
    p.add_argument("--compile", action="store_true",
                   help="also measure bf16 throughput under torch.compile (keys compiled_*)")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    if a.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu needs CUDA")
    results = {}
    for name in a.models:
        row = dict(params=count_params(timm.create_model(name, device="meta")), img=a.img)
        row.update(count_flops(name, a.img))
        if a.cpu_latency:
            row.update(cpu_latency(name, a.img, a.cpu_iters, a.threads))
        if a.gpu:
            row.update(gpu_throughput(name, a.img, a.batch, a.iters, windows=a.windows), batch=a.batch)
            if a.compile:
                row.update(gpu_throughput(name, a.img, a.batch, a.iters, compiled=True, precisions=("bf16",),
                                          windows=a.windows))
        results[name] = row
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
