"""GPU correctness of the Triton scan kernels at model sizes, and the race check.

Compares the fused Triton kernels with the PyTorch reference (forward and every gradient) for every route
set, dtype and option the models use, then runs the same inputs twice and requires bit-identical outputs
and gradients. Prints one line per check and exits non-zero if any fails.

    python tools/gpu_check_kernels.py
"""

from __future__ import annotations

import sys
import time

import torch

from vssm.kernels import (atrous2d, bidir1d, cross2d, cross3d, routed_selective_scan, selective_scan,
                          time_route)

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
TOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
failures = []


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def inputs(routes, grid, batch, dim, N, dtype, *, groups=0, per_route=False, z=False, cl=False, rows=0):
    """Channels-first views of random inputs; ``cl``: channels-last storage; ``rows``: B and C cut from one
    projection row per cell, (rows | B | C) as Vim's x_proj makes them (unit state stride, the launcher's
    vector loads of B / C)."""
    K = len(routes)
    dev = "cuda"

    def fmap(lead, chans, scale=1.0):
        if cl:  # channels-last storage, channels-first view (what interface.py passes down)
            t = torch.randn(*lead, *grid, *chans, device=dev) * scale
            nl, ng = len(lead), len(grid)
            perm = list(range(nl)) + list(range(nl + ng, nl + ng + len(chans))) + list(range(nl, nl + ng))
            return t.to(dtype).permute(perm)
        return (torch.randn(*lead, *chans, *grid, device=dev) * scale).to(dtype)

    bc = (groups, N) if groups else (N,)
    if rows:
        proj = torch.randn(batch, K, *grid, rows + 2 * N, device=dev).to(dtype)
        to_first = [0, 1, proj.dim() - 1] + list(range(2, proj.dim() - 1))
        B, C = proj[..., rows:rows + N].permute(to_first), proj[..., rows + N:].permute(to_first)
    else:
        B, C = fmap((batch, K), bc), fmap((batch, K), bc)
    return {
        "u": fmap((batch, K) if per_route else (batch,), (dim,)),
        "delta": fmap((batch, K) if per_route else (batch,), (dim,), 0.5) - 1.0,
        "A": -(torch.rand(K, dim, N, device=dev) + 0.1),
        "B": B,
        "C": C,
        "D": torch.randn(K, dim, device=dev),
        "z": fmap((batch,), (dim,)) if z else None,
        "delta_bias": torch.randn(K, dim, device=dev) * 0.3,
    }


def leaf_like(v):
    """A fresh leaf with v's values, strides and storage offset (``clone`` would make a strided view dense)."""
    v = v.detach()
    size = v.storage_offset() + 1 + sum((n - 1) * st for n, st in zip(v.shape, v.stride()))
    out = torch.zeros(size, dtype=v.dtype, device=v.device).as_strided(v.shape, v.stride(), v.storage_offset())
    return out.copy_(v).requires_grad_()


def fwd_bwd(backend, x, routes, last=False, seed=0):
    leaves = {k: leaf_like(v) for k, v in x.items() if v is not None}
    args = {k: leaves.get(k) for k in NAMES}
    out = routed_selective_scan(**args, delta_softplus=True, routes=routes, return_last_state=last,
                                backend=backend)
    y, s = out if last else (out, None)
    g = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(y.shape, device="cuda", generator=g)
    loss = (y.float() * w).sum() + (s.sum() if last else 0)
    loss.backward()
    return y.detach(), s, {k: v.grad for k, v in leaves.items()}


def compare(name, x, routes, dtype, last=False):
    t0 = time.time()
    try:
        y_t, s_t, g_t = fwd_bwd("triton", x, routes, last)
        y_r, s_r, g_r = fwd_bwd("reference", x, routes, last)
        errs = {"y": rel(y_t, y_r)}
        if last:
            errs["last"] = rel(s_t, s_r)
        errs.update({k: rel(g_t[k], g_r[k]) for k in g_r})
        tol = TOL[dtype]
        bad = {k: v for k, v in errs.items() if not (v < (tol if k in ("y", "last") else 2 * tol))}
        worst = max(errs, key=errs.get)
        status = "FAIL" if bad else "ok"
        if bad:
            failures.append(name)
        print(f"{status:4} {name:58} worst {worst}={errs[worst]:.2e}  y={errs['y']:.2e}  "
              f"({time.time() - t0:.1f}s)" + (f"  BAD {bad}" if bad else ""), flush=True)
    except Exception as err:  # keep going: one failing case must not hide the others
        failures.append(name)
        print(f"FAIL {name:58} raised {type(err).__name__}: {str(err)[:300]}", flush=True)
    torch.cuda.empty_cache()


def race(name, x, routes):
    a = fwd_bwd("triton", x, routes)
    b = fwd_bwd("triton", x, routes)
    same = torch.equal(a[0], b[0]) and all(torch.equal(a[2][k], b[2][k]) for k in a[2])
    if not same:
        failures.append(name)
    print(f"{'ok' if same else 'FAIL':4} race: {name:52} bit-identical y and grads: {same}", flush=True)


def one_route_checks():
    batch, dim, N, L = 4, 256, 16, 1000
    for form in ("fixed", "shared", "grouped"):
        shape = {"fixed": (dim, N), "shared": (batch, N, L), "grouped": (batch, 4, N, L)}[form]
        x = {"u": torch.randn(batch, dim, L, device="cuda"), "delta": torch.randn(batch, dim, L, device="cuda"),
             "A": -torch.rand(dim, N, device="cuda") - 0.1, "B": torch.randn(*shape, device="cuda"),
             "C": torch.randn(*shape, device="cuda"), "D": torch.randn(dim, device="cuda"),
             "z": torch.randn(batch, dim, L, device="cuda"), "delta_bias": torch.randn(dim, device="cuda") * 0.3}
        res = []
        for backend in ("triton", "reference"):
            lv = {k: v.clone().requires_grad_() for k, v in x.items()}
            y, s = selective_scan(**lv, delta_softplus=True, return_last_state=True, backend=backend)
            y.sum().backward()
            res.append((y, s, {k: v.grad for k, v in lv.items()}))
        errs = {"y": rel(res[0][0], res[1][0]), "last": rel(res[0][1], res[1][1])}
        errs.update({k: rel(res[0][2][k], res[1][2][k]) for k in x})
        worst = max(errs, key=errs.get)
        ok = errs[worst] < 2e-4
        if not ok:
            failures.append(f"one-route {form}")
        print(f"{'ok' if ok else 'FAIL':4} {'one-route selective_scan B/C ' + form:58} worst {worst}={errs[worst]:.2e}",
              flush=True)


def main():
    torch.manual_seed(0)
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    bf, f32 = torch.bfloat16, torch.float32
    compare("cross2d 56x56 b4 d192 N16 bf16", inputs(cross2d(), (56, 56), 4, 192, 16, bf), cross2d(), bf)
    compare("cross2d 56x56 b4 d192 N1 fp32 channels-last", inputs(cross2d(), (56, 56), 4, 192, 1, f32, cl=True),
            cross2d(), f32)
    compare("cross2d 7x7 b8 d1536 N16 fp32 last-state", inputs(cross2d(), (7, 7), 8, 1536, 16, f32), cross2d(),
            f32, last=True)
    compare("cross2d 14x14 b4 d128 N64 fp32", inputs(cross2d(), (14, 14), 4, 128, 64, f32), cross2d(), f32)
    compare("atrous2d 57x57 b2 d96 N16 fp32 grouped G=2", inputs(atrous2d(), (57, 57), 2, 96, 16, f32, groups=2),
            atrous2d(), f32)
    compare("bidir1d L730 b4 d384 N16 bf16 per-route z", inputs(bidir1d(), (730,), 4, 384, 16, bf, per_route=True,
                                                                z=True), bidir1d(), bf)
    compare("bidir1d L197 b8 d384 N16 fp16 z", inputs(bidir1d(), (197,), 8, 384, 16, torch.float16, z=True),
            bidir1d(), torch.float16)
    # Vim-T's training grid (1,536 programs on an H100): the seq backward with two lanes per channel, capped
    compare("bidir1d L197 b128 d384 N16 fp32 per-route z", inputs(bidir1d(), (197,), 128, 384, 16, f32,
                                                                 per_route=True, z=True), bidir1d(), f32)
    # B / C inside projection rows: the in-thread kernels' vector loads (BC_ALIGN 8 in bf16, 4 in fp32)
    compare("bidir1d L197 b128 d384 N16 bf16 per-route z, x_proj rows",
            inputs(bidir1d(), (197,), 128, 384, 16, bf, per_route=True, z=True, cl=True, rows=24), bidir1d(), bf)
    compare("bidir1d L197 b8 d384 N16 fp32 per-route z, x_proj rows",
            inputs(bidir1d(), (197,), 8, 384, 16, f32, per_route=True, z=True, cl=True, rows=24), bidir1d(), f32,
            last=True)
    compare("cross2d 28x28 b8 d192 N16 fp32 channels-last, x_proj rows",
            inputs(cross2d(), (28, 28), 8, 192, 16, f32, cl=True, rows=12), cross2d(), f32)
    compare("cross3d 16x16x16 b1 d64 N16 fp32", inputs(cross3d(), (16, 16, 16), 1, 64, 16, f32), cross3d(), f32)
    compare("time L65536 b1 d64 N16 fp32 last-state", inputs(time_route(), (65536,), 1, 64, 16, f32),
            time_route(), f32, last=True)
    compare("cross2d 9x11 b2 d32 N4 fp64 z", inputs(cross2d(), (9, 11), 2, 32, 4, torch.float64, z=True),
            cross2d(), torch.float64)
    one_route_checks()
    race("cross2d 56x56 b128 d192 N1 bf16", inputs(cross2d(), (56, 56), 128, 192, 1, bf), cross2d())
    race("cross2d 56x56 b32 d192 N16 bf16", inputs(cross2d(), (56, 56), 32, 192, 16, bf), cross2d())
    race("bidir1d L197 b128 d384 N16 bf16 per-route z", inputs(bidir1d(), (197,), 128, 384, 16, bf, per_route=True,
                                                               z=True), bidir1d())
    race("bidir1d L197 b128 d384 N16 bf16 per-route z, x_proj rows",
         inputs(bidir1d(), (197,), 128, 384, 16, bf, per_route=True, z=True, cl=True, rows=24), bidir1d())
    print("FAILED:" if failures else "ALL CHECKS PASSED", ", ".join(failures), flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
