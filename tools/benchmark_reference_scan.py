"""CPU benchmark: the vectorised reference scan against a plain step loop at VMamba's stage-1 length.

    python tools/benchmark_reference_scan.py [--threads 1] [--repeats 3]

Times are CPU seconds of this thread (torch runs single-threaded here), so other load on the machine
disturbs them less than wall time; the median of ``--repeats`` runs is reported. Two tables: the forward pass
(no autograd), and forward + backward through autograd (the reference's gradients, against autograd through the
step loop, its inputs split per step with ``unbind``), gradients taken for u, delta, A, B and C.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vssm.kernels import selective_scan

# (label, batch, channels, N): VMamba-T v2 stage 1 at batch 1 has d_inner 96 x 4 routes = 384 channels, N = 1;
# the v0 models use d_state 16.
CASES = [
    ("vmamba_tiny stage 1, b=1 (384 ch, N=1)", 1, 384, 1),
    ("vmamba_tiny stage 1, b=8 (384 ch, N=1)", 8, 384, 1),
    ("vmamba_tiny_v0 stage 1, b=1 (768 ch, N=16)", 1, 768, 16),
]


def step_loop(u, delta, A, B, C):
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    return torch.stack(ys, -1)


def step_loop_for_autograd(u, delta, A, B, C):
    """The same loop with the inputs split into per-step views once (``unbind``) instead of indexed per step: in
    the backward pass every indexed slice would scatter its gradient into a zero tensor of the full input's size
    (quadratic in L: ~13 s at b=1, 384 ch), while ``unbind`` gathers all steps' gradients with one stack."""
    us, ds, Bs, Cs = (x.unbind(-1) for x in (u, delta, B, C))
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        dt = ds[t][:, :, None]
        h = torch.exp(dt * A) * h + dt * Bs[t][:, None, :] * us[t][:, :, None]
        ys.append((h * Cs[t][:, None, :]).sum(-1))
    return torch.stack(ys, -1)


def cpu_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def forward_backward(fn, inputs, grad_out):
    """One forward and backward pass of ``fn`` through autograd, from fresh leaves."""
    leaves = [x.detach().requires_grad_(True) for x in inputs]
    fn(*leaves).backward(grad_out)
    return [x.grad for x in leaves]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=3136)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), L = {args.length}")
    reference = lambda *x: selective_scan(*x, backend="reference")  # noqa: E731
    rows = {"forward": [], "forward + backward": []}
    for label, batch, dim, N in CASES:
        g = torch.Generator().manual_seed(0)
        u = torch.randn(batch, dim, args.length, generator=g)
        delta = torch.rand(batch, dim, args.length, generator=g) * 0.1
        A = -torch.rand(dim, N, generator=g)
        B = torch.randn(batch, N, args.length, generator=g)
        C = torch.randn(batch, N, args.length, generator=g)
        inputs = (u, delta, A, B, C)
        with torch.no_grad():
            torch.testing.assert_close(reference(*inputs), step_loop(*inputs), rtol=1e-4, atol=1e-4)
            t_ref = cpu_time(lambda: reference(*inputs), args.repeats)
            t_loop = cpu_time(lambda: step_loop(*inputs), max(1, args.repeats // 2))
        rows["forward"].append((label, t_ref, t_loop))
        print(f"{label}: forward {t_ref:.4f} s against {t_loop:.4f} s", flush=True)
        if args.no_backward:
            continue
        grad_out = torch.randn(batch, dim, args.length, generator=g)
        for got, want in zip(forward_backward(reference, inputs, grad_out),
                             forward_backward(step_loop_for_autograd, inputs, grad_out)):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
        t_ref = cpu_time(lambda: forward_backward(reference, inputs, grad_out), args.repeats)
        t_loop = cpu_time(lambda: forward_backward(step_loop_for_autograd, inputs, grad_out),
                          max(1, args.repeats // 2))
        rows["forward + backward"].append((label, t_ref, t_loop))
        print(f"{label}: forward + backward {t_ref:.4f} s against {t_loop:.4f} s", flush=True)
    for name, table in rows.items():
        if not table:
            continue
        print(f"\n{name}\n| case | reference (s) | step loop (s) | speed-up |\n|---|---|---|---|")
        for label, t_ref, t_loop in table:
            print(f"| {label} | {t_ref:.4f} | {t_loop:.4f} | {t_loop / t_ref:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
