"""Time the official CUDA selective scans against our fused routed scan, kernel against kernel (benchmark, not a
test), at the stage shapes of ``tools/benchmark_scan.py`` and with its protocol (forwards replayed from CUDA
graphs, forward + backward by ``do_bench``, medians):

- VMamba (MzeroMiko/VMamba, ``selective_scan_cuda_oflex``, the scan VMamba-T v2 uses), batch 128, 192 channels,
  56x56, N = 1 and 16: the official scan alone on the four route copies, (B, 4 x 192, L); the official pipeline
  (its Triton CrossScan copies + the scan + its CrossMerge); ours, fused, on the map in place. The official scan
  takes one delta per route; ours is given the same per-route delta here.
- Vim (hustvl/Vim, mamba_ssm 1.1.1 ``selective_scan_cuda``), batch 128, 384 channels, L = 197, N = 16, both
  directions with the gate: two official calls (one per direction, on separate inputs: the official model makes
  the reverse direction's inputs by flipping, a copy not counted here); ours, both routes in one call.

Inputs are bf16 (A, D, delta_bias fp32), softplus on, as in the models under autocast.

    python tools/official/bench_official_scan.py --vmamba-build-dir DIR --vim-build-dir DIR [--json F]

The build dirs are what ``build_vmamba_kernel.sh`` (VMAMBA_BUILD_DIR=...) and ``build_official_ext.py vim
--module selective_scan_cuda`` (OFFICIAL_BUILD_DIR=...) print; either may be left out to skip that family.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))
from benchmark_scan import time_it  # noqa: E402  (the kernel benchmark's own timing)

from vssm.kernels import bidir1d, cross2d, routed_selective_scan  # noqa: E402

DEV = "cuda"
BF16 = torch.bfloat16


class OflexScan(torch.autograd.Function):
    """VMamba's ``selective_scan_cuda_oflex``: u, delta (b, K*d, L); A (K*d, N); B, C (b, K, N, L)."""

    ext = None

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        out, x, *_ = OflexScan.ext.fwd(u, delta, A, B, C, D, delta_bias, True, 1, True)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, x)
        return out

    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
        grads = OflexScan.ext.bwd(u, delta, A, B, C, D, delta_bias, dout.contiguous(), x, True, 1)
        return tuple(grads[:7])


class MambaScan(torch.autograd.Function):
    """mamba_ssm 1.1.1's ``selective_scan_cuda`` with the gate: u, delta, z (b, d, L); A (d, N); B, C (b, 1, N, L)."""

    ext = None

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias):
        out, x, out_z = MambaScan.ext.fwd(u, delta, A, B, C, D, z, delta_bias, True)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, x, out)
        return out_z

    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias, x, out = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, ddelta_bias, dz = MambaScan.ext.bwd(
            u, delta, A, B, C, D, z, delta_bias, dout.contiguous(), x, out, None, True, False)[:8]
        return du, ddelta, dA, dB, dC, dD, dz, ddelta_bias


def timed(fn, leaves):
    """(forward ms, forward + backward ms) of ``fn(leaves)`` by benchmark_scan.time_it."""
    call = lambda x, _routes: fn(x)  # noqa: E731  (time_it's signature)
    return time_it(call, leaves, None, False), time_it(call, leaves, None, True)


def channels_last_map(lead, chans, grid):
    """A (lead..., chans, *grid) view of channels-last storage, as the models hand maps to our scan."""
    t = torch.randn(*lead, *grid, *chans, device=DEV).to(BF16)
    nl, ng = len(lead), len(grid)
    return t.permute(*range(nl), *range(nl + ng, t.dim()), *range(nl, nl + ng))


def load_vmamba(build_dir: Path):
    """The built ``selective_scan_cuda_oflex`` (into OflexScan) and the official ``csm_triton`` module."""
    sys.path[:0] = [str(build_dir / "kernels" / "selective_scan"), str(build_dir / "classification" / "models")]
    OflexScan.ext = importlib.import_module("selective_scan_cuda_oflex")
    return importlib.import_module("csm_triton")


def vmamba_rows(csm, N: int, batch=128, dim=192, side=56):
    K, L, grid = 4, side * side, (side, side)
    official = {
        "x": torch.randn(batch, dim, side, side, device=DEV).to(BF16),
        "delta": (torch.randn(batch, K * dim, L, device=DEV) * 0.5 - 1.0).to(BF16),
        "A": -(torch.rand(K * dim, N, device=DEV) + 0.1),
        "B": torch.randn(batch, K, N, L, device=DEV).to(BF16),
        "C": torch.randn(batch, K, N, L, device=DEV).to(BF16),
        "D": torch.randn(K * dim, device=DEV),
        "delta_bias": torch.randn(K * dim, device=DEV) * 0.3,
    }

    def scan_only(x):  # the route copies already made: (b, K * d, L)
        return OflexScan.apply(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["delta_bias"])

    def pipeline(x):
        xs = csm.cross_scan_fn(x["x"], in_channel_first=True, out_channel_first=True)    # (b, K, d, H, W) copies
        ys = OflexScan.apply(xs.reshape(batch, K * dim, L), x["delta"], x["A"], x["B"], x["C"], x["D"],
                             x["delta_bias"])
        return csm.cross_merge_fn(ys.view(batch, K, dim, side, side), in_channel_first=True, out_channel_first=True)

    scan_inputs = {k: v for k, v in official.items() if k != "x"}
    scan_inputs["u"] = torch.randn(batch, K * dim, L, device=DEV).to(BF16)
    ours = {
        "u": channels_last_map((batch,), (dim,), grid=grid),
        "delta": channels_last_map((batch, K), (dim,), grid=grid) * 0.5 - 1.0,
        "A": official["A"].view(K, dim, N), "B": channels_last_map((batch, K), (N,), grid=grid),
        "C": channels_last_map((batch, K), (N,), grid=grid), "D": official["D"].view(K, dim),
        "delta_bias": official["delta_bias"].view(K, dim),
    }

    def fused(x):
        return routed_selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], None, x["delta_bias"],
                                     True, routes=cross2d(), backend="triton")

    name = f"vmamba_t s1 {side}x{side} N{N} (per-route delta)"
    return [(name, "official scan on 4 route copies (oflex)", timed(scan_only, scan_inputs)),
            (name, "official CrossScan + scan + CrossMerge", timed(pipeline, official)),
            (name, "ours, fused, in place", timed(fused, ours))]


def vim_rows(build_dir: Path, batch=128, dim=384, L=197, N=16):
    sys.path[:0] = [str(build_dir / "mamba-1p1p1")]
    MambaScan.ext = importlib.import_module("selective_scan_cuda")
    one = lambda: {  # noqa: E731  (one direction's inputs)
        "u": torch.randn(batch, dim, L, device=DEV).to(BF16),
        "delta": (torch.randn(batch, dim, L, device=DEV) * 0.5 - 1.0).to(BF16),
        "A": -(torch.rand(dim, N, device=DEV) + 0.1),
        "B": torch.randn(batch, 1, N, L, device=DEV).to(BF16), "C": torch.randn(batch, 1, N, L, device=DEV).to(BF16),
        "D": torch.randn(dim, device=DEV), "z": torch.randn(batch, dim, L, device=DEV).to(BF16),
        "delta_bias": torch.randn(dim, device=DEV) * 0.3,
    }
    fwd_dir, bwd_dir = one(), one()
    official = {**{f"f_{k}": v for k, v in fwd_dir.items()}, **{f"b_{k}": v for k, v in bwd_dir.items()}}

    def two_calls(x):
        args = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
        return (MambaScan.apply(*(x[f"f_{a}"] for a in args))
                + MambaScan.apply(*(x[f"b_{a}"] for a in args)))

    grid, K = (L,), 2
    ours = {
        "u": channels_last_map((batch, K), (dim,), grid=grid),
        "delta": channels_last_map((batch, K), (dim,), grid=grid) * 0.5 - 1.0,
        "A": -(torch.rand(K, dim, N, device=DEV) + 0.1), "B": channels_last_map((batch, K), (N,), grid=grid),
        "C": channels_last_map((batch, K), (N,), grid=grid), "D": torch.randn(K, dim, device=DEV),
        "z": channels_last_map((batch,), (dim,), grid=grid), "delta_bias": torch.randn(K, dim, device=DEV) * 0.3,
    }

    def fused(x):
        return routed_selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"],
                                     True, routes=bidir1d(), backend="triton")

    name = "vim_t L197 N16 (both directions, gate)"
    return [(name, "official: two selective_scan_cuda calls (mamba_ssm 1.1.1)", timed(two_calls, official)),
            (name, "ours, fused, both routes in one call", timed(fused, ours))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vmamba-build-dir", type=Path)
    p.add_argument("--vim-build-dir", type=Path)
    p.add_argument("--json")
    a = p.parse_args()
    torch.manual_seed(0)
    print(f"device {torch.cuda.get_device_name()}; torch {torch.__version__}", flush=True)
    rows = []
    if a.vmamba_build_dir:
        csm = load_vmamba(a.vmamba_build_dir)
        for N in (1, 16):
            rows += vmamba_rows(csm, N)
            torch.cuda.empty_cache()
    if a.vim_build_dir:
        rows += vim_rows(a.vim_build_dir)
    print("| stage | implementation | fwd ms | fwd+bwd ms |\n|---|---|---|---|")
    for stage, impl, (f, fb) in rows:
        print(f"| {stage} | {impl} | {f:.3f} | {fb:.3f} |", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump([dict(stage=s, impl=i, fwd_ms=f, fwd_bwd_ms=fb) for s, i, (f, fb) in rows], fh, indent=1)


if __name__ == "__main__":
    main()
