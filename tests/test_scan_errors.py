"""Bad arguments to the scan functions give a ValueError that names the argument; backend selection."""

import pytest
import torch

from vssm.kernels import Route, RouteSet, cross2d, resolve_backend, route_set, routed_selective_scan, selective_scan


def good(batch=2, dim=4, L=5, N=3):
    return dict(u=torch.randn(batch, dim, L), delta=torch.rand(batch, dim, L), A=-torch.rand(dim, N),
                B=torch.randn(batch, N, L), C=torch.randn(batch, N, L))


@pytest.mark.parametrize("change,match", [
    (dict(u=torch.randn(2, 4)), "u must have shape"),
    (dict(delta=torch.rand(2, 4, 6)), "delta must have u's shape"),
    (dict(A=-torch.rand(5, 3)), "A must have shape"),
    (dict(A=torch.empty(4, 0)), "N >= 1"),
    (dict(A=torch.tensor([[float("nan")] * 3] * 4)), "A must be finite"),
    (dict(B=torch.randn(2, 3, 6)), "B of rank 3"),
    (dict(C=torch.randn(2, 3, 3, 5)), "G = 3 groups, which must divide dim = 4"),
    (dict(B=torch.randn(2, 2, 2, 3, 5)), "B must have shape"),
    (dict(u=torch.randint(0, 3, (2, 4, 5))), "u must be a floating-point tensor"),
])
def test_one_route_errors(change, match):
    args = good()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        selective_scan(**args)


def test_one_route_vector_errors():
    with pytest.raises(ValueError, match="D must have shape"):
        selective_scan(**good(), D=torch.randn(5))
    with pytest.raises(ValueError, match="delta_bias must have shape"):
        selective_scan(**good(), delta_bias=torch.randn(4, 1))
    with pytest.raises(ValueError, match="z must have u's shape"):
        selective_scan(**good(), z=torch.randn(2, 4, 4))


def routed_good(grid=(3, 4), K=4, dim=2, N=2):
    return dict(u=torch.randn(1, dim, *grid), delta=torch.rand(1, K, dim, *grid), A=-torch.rand(K, dim, N),
                B=torch.randn(1, K, N, *grid), C=torch.randn(1, K, N, *grid))


@pytest.mark.parametrize("change,match", [
    (dict(u=torch.randn(1, 2, 12)), "2-D grid"),
    (dict(u=torch.randn(1, 3, 2, 3, 4)), "K = 4 routes"),
    (dict(A=-torch.rand(2, 2, 2)), "A must have shape"),
    (dict(delta=torch.rand(1, 2, 3, 5)), "delta must have shape"),
    (dict(B=torch.randn(1, 4, 2, 3, 5)), "B must have shape"),
    (dict(C=torch.randn(1, 4, 3, 2, 3, 4)), "G = 3 groups"),
])
def test_routed_errors(change, match):
    args = routed_good()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        routed_selective_scan(**args, routes=cross2d())


def test_route_description_errors():
    with pytest.raises(ValueError, match="permutation"):
        Route((0, 0))
    with pytest.raises(ValueError, match="step must be >= 1"):
        Route((0, 1), step=(0, 1))
    with pytest.raises(ValueError, match="same number of axes"):
        RouteSet((Route((0,)), Route((0, 1))))
    with pytest.raises(ValueError, match="visit no cell"):
        route_set([dict(order=(0, 1), start=(5, 0))]).check_grid((3, 3))
    with pytest.raises(ValueError, match="routes must be a RouteSet"):
        routed_selective_scan(**routed_good(), routes="cross2d")


def test_backend_selection(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("VSSM_SCAN_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert resolve_backend("auto", cpu) == "reference"
    assert resolve_backend("reference", cpu) == "reference"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cuda", cpu)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", cpu)
    monkeypatch.setenv("VSSM_SCAN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="VSSM_SCAN_BACKEND"):
        resolve_backend("auto", cpu)
    monkeypatch.setenv("VSSM_SCAN_BACKEND", "reference")
    assert resolve_backend("auto", torch.device("cuda")) == "reference"
    # an explicit argument wins over the environment
    monkeypatch.setenv("VSSM_SCAN_BACKEND", "triton")
    assert resolve_backend("reference", cpu) == "reference"


def test_triton_launcher_refuses_maps_beyond_32_bit_offsets():
    """The Triton kernels address inside one batch element with 32-bit offsets: a map spanning 2**31 elements
    per batch element is refused by name (checked on shapes and strides only, so a stand-in object will do)."""
    from vssm.kernels.triton.launch import _check_offsets_fit

    class Strided:  # shape / stride of a (2, 4, 2**16, 2**15) map: 2**33 elements per batch element
        shape = (2, 4, 2 ** 16, 2 ** 15)

        def dim(self):
            return 4

        def stride(self):
            return (2 ** 33, 2 ** 31, 2 ** 15, 1)

    class Small(Strided):
        shape = (2, 4, 8, 8)

        def stride(self):
            return (256, 64, 8, 1)

    _check_offsets_fit(Small(), None)
    with pytest.raises(ValueError, match="2\\*\\*31 per batch element"):
        _check_offsets_fit(Small(), Strided())
