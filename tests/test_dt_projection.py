"""The two ways RoutedSSM computes each route's dt projection (a per-route einsum; one GEMM against a
block-diagonal weight, the CUDA path) give the same values and gradients, and the model the same outputs."""

import pytest
import torch

import vssm.layers.ss2d as ss2d
from vssm.layers.ss2d import RoutedSSM, route_dt_projection


def test_block_diagonal_equals_per_route_products():
    g = torch.Generator().manual_seed(0)
    dts = torch.randn(2, 5, 3, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)  # (b, H, W, K, R)
    weight = torch.randn(4, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)     # (K, d, R)
    out = [route_dt_projection(dts, weight, block_diagonal=flag) for flag in (False, True)]
    assert out[0].shape == out[1].shape == (2, 5, 3, 4, 7)
    torch.testing.assert_close(out[1], out[0], rtol=1e-12, atol=1e-12)
    seed = torch.randn(out[0].shape, generator=g, dtype=torch.float64)
    grads = [torch.autograd.grad((o * seed).sum(), (dts, weight)) for o in out]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("volume", [False, True])
def test_routed_ssm_same_output_either_way(monkeypatch, volume):
    from vssm.kernels import cross3d

    torch.manual_seed(0)
    kw = dict(routes=cross3d()) if volume else {}
    layer = RoutedSSM(8, d_state=2, dt_rank=3, **kw).double()
    x = torch.randn((1, 3, 2, 4, 8) if volume else (2, 5, 3, 8), dtype=torch.float64)
    reference = layer(x)
    original = ss2d.route_dt_projection
    monkeypatch.setattr(ss2d, "route_dt_projection", lambda d, w: original(d, w, block_diagonal=True))
    torch.testing.assert_close(layer(x), reference, rtol=1e-12, atol=1e-12)
