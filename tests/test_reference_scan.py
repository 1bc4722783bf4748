"""The one-route reference scan against a plain step loop, its gradients and its low-precision behaviour."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from vssm.kernels import selective_scan
from vssm.kernels.reference import linear_scan_ref


def step_loop_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None):
    """The recurrence written out one step at a time, in the inputs' dtype (the test oracle)."""
    batch, dim, L = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)

    def at(x, t):  # B or C at step t, as (batch, dim, N)
        if x.dim() == 2:
            return x.expand(batch, -1, -1)
        if x.dim() == 3:
            return x[:, None, :, t].expand(-1, dim, -1)
        return x[..., t].repeat_interleave(dim // x.shape[1], dim=1)

    h = torch.zeros(batch, dim, A.shape[1], dtype=u.dtype) if h0 is None else h0
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * at(B, t) * u[:, :, t, None]
        ys.append((h * at(C, t)).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y, h


def make_inputs(batch=2, dim=4, L=13, N=3, bc="batch", groups=2, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(1)

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)

    bc_shape = {"fixed": (dim, N), "batch": (batch, N, L), "grouped": (batch, groups, N, L)}[bc]
    t = dict(
        u=r(batch, dim, L),
        delta=r(batch, dim, L, scale=0.5),
        A=-torch.rand(dim, N, generator=g, dtype=torch.float64).mul(2).add(0.1).to(dtype),
        B=r(*bc_shape),
        C=r(*bc_shape),
        D=r(dim),
        z=r(batch, dim, L),
        delta_bias=r(dim, scale=0.3),
    )
    if requires_grad:
        for v in t.values():
            v.requires_grad_(True)
    return t


OPTION_SETS = list(itertools.product(["fixed", "batch", "grouped"], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("bc,with_d_z,with_bias,softplus", OPTION_SETS)
def test_matches_step_loop_fp64(bc, with_d_z, with_bias, softplus):
    t = make_inputs(bc=bc)
    if not softplus:
        t["delta"] = t["delta"].abs()  # a positive step, as softplus would give
    kwargs = dict(D=t["D"] if with_d_z else None, z=t["z"] if with_d_z else None,
                  delta_bias=t["delta_bias"] if with_bias else None, delta_softplus=softplus)
    y, last = selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], return_last_state=True, **kwargs)
    y_loop, h_loop = step_loop_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], **kwargs)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_loop, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last, h_loop, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("L", [1, 2, 5, 16, 17, 50])
def test_lengths_around_chunk_boundaries(L):
    t = make_inputs(L=L, bc="batch")
    y = selective_scan(t["u"], t["delta"].abs(), t["A"], t["B"], t["C"], t["D"])
    y_loop, _ = step_loop_scan(t["u"], t["delta"].abs(), t["A"], t["B"], t["C"], t["D"])
    torch.testing.assert_close(y, y_loop, rtol=1e-10, atol=1e-10)


def test_linear_scan_initial_state_and_complex():
    g = torch.Generator().manual_seed(0)
    decay = torch.polar(torch.rand(23, 3, generator=g, dtype=torch.float64),
                        torch.randn(23, 3, generator=g, dtype=torch.float64))
    inp = torch.randn(23, 3, generator=g, dtype=torch.complex128)
    h0 = torch.randn(3, generator=g, dtype=torch.complex128)
    states = linear_scan_ref(decay, inp, h0, dim=0)
    h, expected = h0, []
    for t in range(23):
        h = decay[t] * h + inp[t]
        expected.append(h)
    torch.testing.assert_close(states, torch.stack(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bc", ["fixed", "batch", "grouped"])
def test_gradcheck_every_input(bc):
    t = make_inputs(batch=1, dim=2, L=5, N=2, bc=bc, groups=2, requires_grad=True)

    def fn(u, delta, A, B, C, D, z, delta_bias):
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)

    assert torch.autograd.gradcheck(fn, tuple(t.values()), eps=1e-6, atol=1e-6)


def test_gradcheck_last_state():
    t = make_inputs(batch=1, dim=2, L=4, N=2, bc="batch", requires_grad=True)

    def fn(u, delta, A, B, C):
        return selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True)[1]

    assert torch.autograd.gradcheck(fn, (t["u"], t["delta"], t["A"], t["B"], t["C"]), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs(dtype):
    ref = make_inputs(dim=8, L=40, N=4, bc="grouped")
    low = {k: v.to(dtype) for k, v in ref.items()}
    args = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    y_ref = selective_scan(*(ref[k] for k in args), delta_softplus=True)
    y, last = selective_scan(*(low[k] for k in args), delta_softplus=True, return_last_state=True)
    assert y.dtype == dtype and last.dtype == torch.float32
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    # Compare against the fp64 result computed from the same (rounded) inputs, relative to its scale.
    y_rounded = selective_scan(*(low[k].double() for k in args), delta_softplus=True)
    rel = (y.double() - y_rounded).abs().max() / y_rounded.abs().max()
    assert rel < tol, f"{dtype}: relative error {rel:.2e}"
    rel_to_exact = (y.double() - y_ref).abs().max() / y_ref.abs().max()
    assert rel_to_exact < (1e-5 if dtype == torch.float32 else 3e-2)


@pytest.mark.parametrize("bc,N,block", [("fixed", 1, 8), ("batch", 3, 8), ("grouped", 1, 64), ("grouped", 3, 64),
                                        ("batch", 1, 1 << 18)])
def test_blocked_cpu_path_matches_chunked_form(bc, N, block, monkeypatch):
    """The blocked CPU path (hand-written backward, blocks carried across) against the chunked form under autograd:
    outputs, last state and every gradient, initial state included, over block boundaries and chunk tails."""
    import vssm.kernels.reference as ref

    monkeypatch.setattr(ref, "_BLOCK_ELEMS", block)
    monkeypatch.setattr(ref, "_OUTER_ELEMS", 4 * block)
    results = []
    for blocked in (True, False):
        monkeypatch.setattr(ref, "_blocked_path", lambda u, blocked=blocked: blocked)
        t = make_inputs(batch=2, dim=4, L=203, N=N, bc=bc, requires_grad=True)
        t["h0"] = torch.randn(2, 4, N, dtype=torch.float64, generator=torch.Generator().manual_seed(2),
                              requires_grad=True)
        y, last = ref.selective_scan_ref(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"],
                                         True, return_last_state=True, initial_state=t["h0"])
        g = torch.Generator().manual_seed(3)
        loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum() + (last * last).sum()
        loss.backward()
        results.append([y, last] + [v.grad for v in t.values()])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_blocked_path_across_inference_mode():
    """The CPU path reuses its block buffers between calls; a call under inference_mode must not hand later
    calls buffers they may not write."""
    t = make_inputs(dtype=torch.float32)
    args = (t["u"], t["delta"].abs(), t["A"], t["B"], t["C"])
    with torch.inference_mode():
        y_inf = selective_scan(*args)
    u = t["u"].clone().requires_grad_(True)
    y = selective_scan(u, *args[1:])
    y.sum().backward()
    with torch.inference_mode():
        y_again = selective_scan(*args)
    torch.testing.assert_close(y_inf, y.detach())
    torch.testing.assert_close(y_again, y.detach())
