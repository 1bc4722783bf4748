"""Benchmark of the routed selective scan on a GPU: reference vs materialised pipeline vs fused kernel.

For the stage shapes of vmamba_tiny (batch 128, 56/28/14/7 grids with dims 192/384/768/1536, N = 1 and 16,
cross2d's 4 routes, D + delta_bias + softplus, bf16 maps) and vim_tiny (batch 128, L = 197 and 730, dim 384,
N = 16, 2 routes with per-route u/delta and the z gate) it times, forward and forward+backward:

- reference:    ``routed_selective_scan(backend="reference")`` (PyTorch on the GPU);
- materialised: explicit per-route gathers of u/delta/B/C, the one-route Triton kernel on the stacked
                (batch, K*dim, L) sequences, then an explicit scatter-add merge (how peer repositories run it);
- fused:        ``routed_selective_scan(backend="triton")``: routes read in place, merge fused.

and reports achieved bandwidth against the minimum bytes (each input read once, each output written once)
and the device's measured copy bandwidth.

    python tools/benchmark_scan.py [--quick] [--sweep] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from triton.testing import do_bench, do_bench_cudagraph

from vssm.kernels import bidir1d, cross2d, routed_selective_scan, selective_scan

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def nbytes(t):
    return 0 if t is None else t.numel() * t.element_size()


def copy_bandwidth():
    x = torch.empty(2 ** 29, dtype=torch.uint8, device="cuda").random_()
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), warmup=50, rep=300, return_mode="median")
    return 2 * nbytes(x) / (ms * 1e-3)


def stage_inputs(routes, grid, batch, dim, N, *, per_route=False, z=False, dtype=torch.bfloat16,
                 channels_last=True):
    """Channels-first views of the maps; with ``channels_last`` their storage has channels (and B/C's state
    index) fastest, as the models produce them from linear layers."""
    K = len(routes)
    lead = (batch, K) if per_route else (batch,)
    dev = "cuda"
    G = len(grid)

    def fmap(lead_, chans, scale=1.0, shift=0.0):
        if not channels_last:
            return (torch.randn(*lead_, *chans, *grid, device=dev) * scale + shift).to(dtype)
        t = (torch.randn(*lead_, *grid, *chans, device=dev) * scale + shift).to(dtype)
        nl = len(lead_)
        return t.permute(*range(nl), *range(nl + G, t.dim()), *range(nl, nl + G))

    return {
        "u": fmap(lead, (dim,)),
        "delta": fmap(lead, (dim,), 0.5, -1.0),
        "A": -(torch.rand(K, dim, N, device=dev) + 0.1),
        "B": fmap((batch, K), (N,)),
        "C": fmap((batch, K), (N,)),
        "D": torch.randn(K, dim, device=dev),
        "z": fmap((batch,), (dim,)) if z else None,
        "delta_bias": torch.randn(K, dim, device=dev) * 0.3,
    }


def fused(x, routes):
    return routed_selective_scan(**{k: x[k] for k in NAMES}, delta_softplus=True, routes=routes, backend="triton")


def reference(x, routes):
    return routed_selective_scan(**{k: x[k] for k in NAMES}, delta_softplus=True, routes=routes,
                                 backend="reference")


def materialised(x, routes, _cache={}):
    """Per-route copies in, one-route kernel, per-route scatter-add out."""
    u, delta, B, C, z = x["u"], x["delta"], x["B"], x["C"], x["z"]
    G = routes.ndim
    grid = tuple(B.shape[-G:])
    K, dim, N = x["A"].shape
    batch = B.shape[0]
    key = (routes, grid)
    if key not in _cache:
        _cache[key] = [i.cuda() for i in routes.indices(grid)]
    idx = _cache[key]

    def gather(t, per_route):
        # route copies laid out (batch, L, K, channels) so that the one-route kernel reads channels-contiguous
        flat = t.flatten(t.dim() - G)
        parts = [(flat[:, k] if per_route else flat)[..., i] for k, i in enumerate(idx)]
        return torch.stack([p.transpose(1, 2) for p in parts], 2)      # (batch, L, K, c)

    us = gather(u, u.dim() == G + 3).flatten(2).transpose(1, 2)         # (batch, K*dim, L) view
    dts = gather(delta, delta.dim() == G + 3).flatten(2).transpose(1, 2)
    Bs, Cs = (gather(t, True).permute(0, 2, 3, 1) for t in (B, C))      # (batch, K, N, L) views
    ys = selective_scan(us, dts, x["A"].reshape(K * dim, N), Bs, Cs, x["D"].reshape(-1), None,
                        x["delta_bias"].reshape(-1), True, backend="triton")   # (batch, K*dim, L)
    ys = ys.transpose(1, 2).reshape(batch, -1, K, dim)                  # (batch, L, K, dim)
    out = ys.new_zeros(batch, ys.shape[1], dim)
    for k, i in enumerate(idx):
        out = out.index_add(1, i, ys[:, :, k])                           # (batch, cells, dim)
    out = out.view(batch, *grid, dim).movedim(-1, 1)
    if z is not None:
        out = out * torch.nn.functional.silu(z)
    return out


def min_bytes(x, y):
    inputs = sum(nbytes(x[k]) for k in NAMES)
    fwd = inputs + nbytes(y)
    fwd_bwd = fwd + inputs + nbytes(y) + inputs  # backward re-reads inputs and dy, writes one grad per input
    return fwd, fwd_bwd


def time_it(fn, x, routes, backward):
    """Median ms of a forward (replayed from a CUDA graph: the GPU's time alone; ``do_bench`` flushes L2
    before every call, so for kernels as short as the host's preparation of a call, ~0.3 ms, it would time
    the host; replays do not flush, which favours only the 7x7 stage, whose maps fit in L2) or of a forward +
    backward (``do_bench``)."""
    if not backward:
        with torch.no_grad():
            try:
                return do_bench_cudagraph(lambda: fn(x, routes), rep=200, return_mode="median")
            except RuntimeError:  # a pipeline that cannot be captured: time it with the host
                torch.cuda.synchronize()
                return do_bench(lambda: fn(x, routes), warmup=25, rep=200, return_mode="median")
    leaves = {k: (v.detach().requires_grad_() if v is not None else None) for k, v in x.items()}
    lv = [v for v in leaves.values() if v is not None]
    y = fn(leaves, routes)
    dy = torch.randn_like(y)

    def step():
        out = fn(leaves, routes)
        torch.autograd.grad(out, lv, dy)

    return do_bench(step, warmup=25, rep=200, return_mode="median")


def guarded(fn, *args, batch_note=None):
    try:
        return fn(*args), ""
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None, "OOM"


STAGES = [
    # name, routes, grid, batch, dim, N, per_route, z
    ("vmamba_t s1 56x56 N1", cross2d(), (56, 56), 128, 192, 1, False, False),
    ("vmamba_t s1 56x56 N16", cross2d(), (56, 56), 128, 192, 16, False, False),
    ("vmamba_t s2 28x28 N1", cross2d(), (28, 28), 128, 384, 1, False, False),
    ("vmamba_t s2 28x28 N16", cross2d(), (28, 28), 128, 384, 16, False, False),
    ("vmamba_t s3 14x14 N1", cross2d(), (14, 14), 128, 768, 1, False, False),
    ("vmamba_t s3 14x14 N16", cross2d(), (14, 14), 128, 768, 16, False, False),
    ("vmamba_t s4 7x7 N1", cross2d(), (7, 7), 128, 1536, 1, False, False),
    ("vmamba_t s4 7x7 N16", cross2d(), (7, 7), 128, 1536, 16, False, False),
    ("vim_t L197 N16", bidir1d(), (197,), 128, 384, 16, True, True),
    ("vim_t L730 N16", bidir1d(), (730,), 128, 384, 16, True, True),
]


def sweep(configs, stages):
    """Forward+backward of the fused kernel under several tile configs (VSSM_SCAN_TILE); returns the
    fastest config per state size."""
    best = {}
    for name, routes, grid, batch, dim, N, per_route, z in stages:
        x = stage_inputs(routes, grid, batch, dim, N, per_route=per_route, z=z)
        for cfg in configs.get(N, []):
            os.environ["VSSM_SCAN_TILE"] = cfg
            t0 = time.time()
            try:
                f = time_it(fused, x, routes, False)
                fb = time_it(fused, x, routes, True)
                print(f"sweep {name:24} tile {cfg:10} fwd {f:8.3f} ms  fwd+bwd {fb:8.3f} ms  "
                      f"({time.time() - t0:.0f}s incl. compile)", flush=True)
                if N not in best or fb < best[N][1]:
                    best[N] = (cfg, fb)
            except Exception as err:
                print(f"sweep {name:24} tile {cfg:10} failed: {type(err).__name__}: {str(err)[:200]}", flush=True)
        os.environ.pop("VSSM_SCAN_TILE", None)
        del x
        torch.cuda.empty_cache()
    print("best tiles:", best, flush=True)
    return {n: cfg for n, (cfg, _) in best.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="56x56 and vim L197 only")
    parser.add_argument("--sweep", action="store_true", help="tile-config sweep at 56x56 first")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    print(f"device {dev}; torch {torch.__version__}; measured copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    best = {}
    if args.sweep:
        best = sweep({1: ["128,16,4", "128,32,4", "64,32,4"], 16: ["16,16,4", "32,16,4", "16,32,4"]},
                     [s for s in STAGES if s[2] == (56, 56)])
    stages = [s for s in STAGES if s[2] in ((56, 56), (197,))] if args.quick else STAGES
    header = ("| stage | impl | fwd ms | fwd GB/s | fwd % floor | fwd+bwd ms | fwd+bwd GB/s | fwd+bwd % floor |\n"
              "|---|---|---|---|---|---|---|---|")
    rows = []
    for name, routes, grid, batch, dim, N, per_route, z in stages:
        if N in best:
            os.environ["VSSM_SCAN_TILE"] = best[N]
        else:
            os.environ.pop("VSSM_SCAN_TILE", None)
        x = stage_inputs(routes, grid, batch, dim, N, per_route=per_route, z=z)
        with torch.no_grad():
            y = fused(x, routes)
        fwd_b, fb_b = min_bytes(x, y)
        impls = [("materialised", materialised), ("fused", fused)]
        if not args.no_reference:
            impls.insert(0, ("reference", reference))
        if grid == (56, 56):  # the same maps stored channels-first: uncoalesced channel tiles
            impls.append(("fused, channels-first maps", "cf"))
        for impl_name, fn in impls:
            xs = x
            if fn == "cf":
                xs = stage_inputs(routes, grid, batch, dim, N, per_route=per_route, z=z, channels_last=False)
                fn = fused
            f, note_f = guarded(time_it, fn, xs, routes, False)
            fb, note_fb = guarded(time_it, fn, xs, routes, True)
            del xs

            def cell(ms, nbytes_, note):
                if ms is None:
                    return f"{note} | - | -"
                gbs = nbytes_ / (ms * 1e-3) / 1e9
                return f"{ms:.3f} | {gbs:.0f} | {100 * gbs * 1e9 / bw:.0f}%"

            row = f"| {name} | {impl_name} | {cell(f, fwd_b, note_f)} | {cell(fb, fb_b, note_fb)} |"
            rows.append(row)
            print(row, flush=True)
            torch.cuda.empty_cache()
        print(f"  (min bytes: fwd {fwd_b / 1e6:.1f} MB, fwd+bwd {fb_b / 1e6:.1f} MB; floor at copy bandwidth: "
              f"fwd {fwd_b / bw * 1e3:.3f} ms, fwd+bwd {fb_b / bw * 1e3:.3f} ms)", flush=True)
        del x, y
        torch.cuda.empty_cache()
    table = (f"device: {dev}; copy bandwidth {bw / 1e12:.2f} TB/s; bf16 maps stored channels-last, fp32 A/D/bias; "
             f"tiles {best or 'default'}; "
             f"% floor = achieved bandwidth on the minimum bytes / copy bandwidth\n\n" + header + "\n" + "\n".join(rows))
    print("\n" + table, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
