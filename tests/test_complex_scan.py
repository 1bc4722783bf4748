"""The complex-diagonal time scan (reference path): against a complex128 step loop, gradients, bad input."""

import pytest
import torch

from vssm.kernels import complex_scan, complex_scan_ref
from vssm.kernels.routes import Route, RouteSet, cross2d, time_route


def _decay(shape, low=0.5, high=0.999):
    """Complex decays with modulus in [low, high), as (..., 2, C) pairs (pair axis second to last)."""
    r = low + (high - low) * torch.rand(shape, dtype=torch.float64)
    theta = torch.randn(shape, dtype=torch.float64)
    return torch.stack([r * theta.cos(), r * theta.sin()], -2)


def _loop(a, b, x0=None, reverse=False):
    """complex128 loop over the steps, the slow oracle."""
    bc = torch.complex(b[:, :, 0].double(), b[:, :, 1].double())          # (batch, L, C, *rest)
    rest = (1,) * (b.dim() - 4)
    a = a.double()
    if a.dim() == 2:
        ac = torch.complex(a[0], a[1]).reshape((1, 1, -1) + rest).expand(bc.shape[:2] + (-1,) + rest)
    else:
        ac = torch.complex(a[:, :, 0], a[:, :, 1]).reshape(a.shape[:2] + (-1,) + rest)
    x = torch.zeros_like(bc[:, 0]) if x0 is None else torch.complex(x0[:, 0].double(), x0[:, 1].double())
    out = [None] * bc.shape[1]
    steps = range(bc.shape[1] - 1, -1, -1) if reverse else range(bc.shape[1])
    for t in steps:
        x = ac[:, t] * x + bc[:, t]
        out[t] = x
    out = torch.stack(out, 1)
    return torch.stack([out.real, out.imag], 2)


@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_complex128_loop(per_step, reverse):
    batch, length, C, H, W = 2, 23, 3, 2, 4
    a = _decay((batch, length, C) if per_step else (C,)).float()
    b = torch.randn(batch, length, 2, C, H, W)
    x0 = torch.randn(batch, 2, C, H, W)
    routes = RouteSet((Route((0,), flips=(reverse,)),), "time")
    got = complex_scan(a, b, x0, routes=routes)
    assert got.shape == b.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), _loop(a, b, x0, reverse), atol=2e-5, rtol=2e-5)
    zero_start = complex_scan(a, b, routes=routes)
    torch.testing.assert_close(zero_start.double(), _loop(a, b, None, reverse), atol=2e-5, rtol=2e-5)


def test_long_clip_precision_fp32_pairs():
    """1000 steps with decays close to 1 (slow channels): fp32 pairs stay within 1e-3 of complex128."""
    a = _decay((8,), low=0.99, high=0.9995).float()
    b = 1e-2 * torch.randn(1, 1000, 2, 8, 4)
    x0 = torch.randn(1, 2, 8, 4)
    got, want = complex_scan(a, b, x0).double(), _loop(a, b, x0)
    assert (got - want).abs().max().item() < 1e-3


def test_fp64_stays_fp64_and_half_accumulates_in_fp32():
    a = _decay((3,))
    b = torch.randn(1, 5, 2, 3, 2, dtype=torch.float64)
    assert complex_scan(a, b).dtype == torch.float64
    out = complex_scan(a.float(), b.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _loop(a, b.to(torch.bfloat16).double()), atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences():
    a = _decay((2,)).requires_grad_()
    b = torch.randn(1, 6, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    x0 = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, x0: complex_scan(a, b, x0), (a, b, x0))
    a4 = _decay((1, 6, 2)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: complex_scan(a, b, routes=RouteSet(
        (Route((0,), flips=(True,)),))), (a4, b))


def test_reference_function_is_the_public_path_on_cpu():
    a = _decay((4,)).float()
    b = torch.randn(2, 9, 2, 4, 3)
    torch.testing.assert_close(complex_scan(a, b, backend="reference"), complex_scan_ref(a, b))


@pytest.mark.parametrize("bad, message", [
    (dict(b=torch.randn(2, 5, 3, 4)), "axis 2"),
    (dict(b=torch.randn(2, 5, 4)), "axis 2"),
    (dict(a=torch.randn(4, 2)), r"\(2, C\)"),
    (dict(a=torch.randn(2, 5, 2, 3)), r"\(batch, L, 2, C\)"),
    (dict(a=torch.randn(3, 2, 4)), r"\(2, C\) or"),
    (dict(initial_state=torch.randn(2, 2, 4)), "initial_state must have shape"),
    (dict(b=torch.randn(2, 5, 2, 4, dtype=torch.complex64)), "floating-point"),
])
def test_bad_input_names_the_problem(bad, message):
    args = dict(a=torch.randn(2, 4), b=torch.randn(2, 5, 2, 4, 3), initial_state=None)
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        complex_scan(args["a"], args["b"], args["initial_state"])


def test_bad_routes_and_backend():
    a, b = torch.randn(2, 4), torch.randn(2, 5, 2, 4)
    with pytest.raises(ValueError, match="one 1-D route"):
        complex_scan(a, b, routes=cross2d())
    with pytest.raises(ValueError, match="every step"):
        complex_scan(a, b, routes=RouteSet((Route((0,), step=(2,)),)))
    with pytest.raises(ValueError, match="backend"):
        complex_scan(a, b, routes=time_route(), backend="cuda")
