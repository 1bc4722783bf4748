"""Cases for the Triton scan kernels under TRITON_INTERPRET=1 on CPU, against the PyTorch reference.

Run by ``tests/test_triton_scan.py`` in a fresh interpreter with TRITON_INTERPRET=1 set before triton is
first imported (triton decorates its own language helpers at import, so the variable must precede any
``import triton`` in the process; a shared pytest process cannot promise that). Direct use:

    TRITON_INTERPRET=1 pytest tests/triton/scan_cases.py

Forward and backward for every route set (odd sizes, unequal route lengths, a custom set that leaves cells
unvisited), fp32/fp64/bf16/fp16, N in {1, 4, 16}, shared and per-route u/delta, grouped B/C, optional D, z,
delta_bias, softplus, the last state (and its gradient), L = 1, channels-last views, several tiles per route,
the one-route op with every B/C form, determinism, and torch.compile without graph breaks.
"""

import os

import pytest
import torch

pytest.importorskip("triton")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from vssm.kernels import (  # noqa: E402
    atrous2d,
    bidir1d,
    cross2d,
    cross3d,
    route_set,
    routed_selective_scan,
    selective_scan,
    time_route,
)
from vssm.kernels.triton import launch  # noqa: E402
from vssm.kernels.triton.common import softplus as kernel_softplus  # noqa: E402

pytestmark = pytest.mark.triton

if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("needs TRITON_INTERPRET=1 set before triton is imported (or a GPU)", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
TOL = {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def make_inputs(routes, grid, *, batch=1, dim=8, N=4, groups=0, per_route_u=False, per_route_dt=False,
                has_D=True, has_z=True, has_bias=True, dtype=torch.float32, channels_last=False):
    """Leaf tensors for ``routed_selective_scan`` (channels-first shapes, or channels-last storage)."""
    K = len(routes)
    g = torch.Generator().manual_seed(1234)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    def fmap(lead, chans):
        # channels-first shape (lead, chans, *grid); with channels_last the storage is (lead, *grid, chans)
        if channels_last:
            return rand(*lead, *grid, *chans)
        return rand(*lead, *chans, *grid)

    bc_chans = (groups, N) if groups else (N,)
    x = {
        "u": fmap((batch, K) if per_route_u else (batch,), (dim,)),
        "delta": fmap((batch, K) if per_route_dt else (batch,), (dim,)) * 0.5,
        "A": -(torch.rand(K, dim, N, generator=g) + 0.3).to(dtype),
        "B": fmap((batch, K), bc_chans),
        "C": fmap((batch, K), bc_chans),
        "D": rand(K, dim) if has_D else None,
        "z": fmap((batch,), (dim,)) if has_z else None,
        "delta_bias": rand(K, dim, scale=0.3) if has_bias else None,
    }
    return {k: (v.to(DEVICE).requires_grad_() if v is not None else None) for k, v in x.items()}


def leaf_like(v):
    """A fresh leaf with v's values, strides and storage offset (``clone`` would make a strided view dense)."""
    v = v.detach()
    size = v.storage_offset() + 1 + sum((n - 1) * st for n, st in zip(v.shape, v.stride()))
    out = torch.zeros(size, dtype=v.dtype, device=v.device).as_strided(v.shape, v.stride(), v.storage_offset())
    return out.copy_(v).requires_grad_()


def run(backend, x, routes, *, softplus=True, last=False, channels_last=False, seed=7):
    leaves = {k: leaf_like(v) for k, v in x.items() if v is not None}
    args = {k: leaves.get(k) for k in NAMES}
    out = routed_selective_scan(**args, delta_softplus=softplus, routes=routes, channels_last=channels_last,
                                return_last_state=last, backend=backend)
    y, state = out if last else (out, None)
    g = torch.Generator().manual_seed(seed)
    loss = (y.double() * torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.device)).sum()
    if last:
        loss = loss + (state.double() * torch.randn(state.shape, generator=g, dtype=torch.float64)
                       .to(y.device)).sum()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items()}
    return y.detach(), (state.detach() if last else None), grads


def check(x, routes, dtype=torch.float32, **kw):
    tol = TOL[dtype]
    y_t, s_t, g_t = run("triton", x, routes, **kw)
    y_r, s_r, g_r = run("reference", x, routes, **kw)
    assert y_t.dtype == y_r.dtype and y_t.shape == y_r.shape
    assert torch.isfinite(y_t).all()
    assert rel_err(y_t, y_r) < tol, f"y differs: {rel_err(y_t, y_r)}"
    if s_r is not None:
        assert s_t.dtype == s_r.dtype and rel_err(s_t, s_r) < tol, f"last state differs: {rel_err(s_t, s_r)}"
    for k in g_r:
        assert g_t[k] is not None and g_t[k].shape == g_r[k].shape, k
        assert g_t[k].dtype == g_r[k].dtype, k
        # bf16/fp16 gradients of the sums over many cells carry their own rounding; give them twice the room
        assert rel_err(g_t[k], g_r[k]) < tol * (2 if dtype in (torch.float16, torch.bfloat16) else 1), \
            f"grad {k} differs: {rel_err(g_t[k], g_r[k])}"


ROUTE_SETS = [
    pytest.param(bidir1d(), (7,), id="bidir1d"),
    pytest.param(cross2d(), (3, 5), id="cross2d"),
    pytest.param(atrous2d(), (5, 3), id="atrous2d-odd"),
    pytest.param(cross3d(), (2, 3, 2), id="cross3d"),
    pytest.param(time_route(), (6,), id="time"),
    # partial, overlapping coverage: the kernels must zero-fill and gate in a separate pass
    pytest.param(route_set([((0, 1), (False, True), (1, 0), (1, 1)), ((1, 0), None, (0, 1), (2, 1))]), (3, 4),
                 id="custom"),
]


@pytest.mark.parametrize("routes,grid", ROUTE_SETS)
def test_route_sets_forward_backward(routes, grid):
    check(make_inputs(routes, grid), routes)


@pytest.mark.parametrize("dtype,N", [(torch.bfloat16, 4), (torch.float16, 1), (torch.float64, 4)])
def test_dtypes(dtype, N):
    routes = cross2d()
    check(make_inputs(routes, (3, 4), N=N, dtype=dtype), routes, dtype=dtype)


@pytest.mark.parametrize("N", [1, 16])
def test_state_sizes_without_options(N):
    routes = atrous2d()
    x = make_inputs(routes, (4, 3), N=N, has_D=False, has_z=False, has_bias=False)
    check(x, routes, softplus=False)


def test_per_route_maps_and_grouped_bc():
    routes = cross2d()
    check(make_inputs(routes, (3, 3), per_route_u=True, per_route_dt=True, groups=2), routes)
    check(make_inputs(routes, (2, 3), per_route_u=True, groups=4, has_z=False), routes)


def test_last_state_and_its_gradient():
    routes = bidir1d()
    check(make_inputs(routes, (5,), N=4, has_z=False), routes, last=True)
    routes = atrous2d()
    check(make_inputs(routes, (3, 3), N=1), routes, last=True)


def test_single_step_routes():
    check(make_inputs(bidir1d(), (1,)), bidir1d(), last=True)
    check(make_inputs(cross2d(), (1, 1), N=1), cross2d())


@pytest.mark.parametrize("routes,grid", [(cross2d(), (3, 4)), (bidir1d(), (6,))], ids=["cross2d", "bidir1d"])
def test_channels_last_views(routes, grid):
    x = make_inputs(routes, grid, groups=2, channels_last=True)
    check(x, routes, channels_last=True)


def test_several_tiles_per_route(monkeypatch):
    """Tiles of 4 steps and 4 channels: state carries between tiles (forward and backward), several channel
    blocks per B/C group (dB/dC summed over blocks), routes of unequal length."""
    monkeypatch.setenv("VSSM_SCAN_TILE", "4,4,4")
    check(make_inputs(cross2d(), (3, 5), N=16), cross2d(), last=True)
    check(make_inputs(atrous2d(), (5, 5), per_route_dt=True, groups=2), atrous2d())


def test_grid_axes_not_row_major():
    """Maps whose grid axes are not laid out row-major (a transposed view) cannot be addressed by linear cell
    index; the kernels fall back to per-axis route coordinates."""
    routes = cross2d()
    x = make_inputs(routes, (4, 3))
    for key in ("u", "delta", "z"):
        base = x[key].detach().transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, W-major storage
        assert not base.is_contiguous()
        x[key] = base.requires_grad_()
    check(x, routes)


@pytest.mark.parametrize("kernel", ["tile3d", "nloop", "seq"])
def test_other_forward_kernel(kernel, monkeypatch):
    """Every forward kernel (VSSM_SCAN_FWD_KERNEL) at the state sizes the others run by default."""
    monkeypatch.setenv("VSSM_SCAN_FWD_KERNEL", kernel)
    check(make_inputs(cross2d(), (3, 5), N=4), cross2d(), last=True)
    check(make_inputs(bidir1d(), (6,), N=16, per_route_u=True), bidir1d())


@pytest.mark.parametrize("kernel", ["tile3d", "seq"])
def test_other_backward_kernel(kernel, monkeypatch):
    """Both backward kernels (VSSM_SCAN_BWD_KERNEL) at N = 1 and 16, several tiles per route (state carried
    between tiles), shared and per-route u / delta, grouped B / C, a gate and the last state's gradient."""
    monkeypatch.setenv("VSSM_SCAN_BWD_KERNEL", kernel)
    monkeypatch.setenv("VSSM_SCAN_TILE", "4,4,4")
    check(make_inputs(cross2d(), (3, 5), N=1), cross2d(), last=True)
    check(make_inputs(bidir1d(), (7,), N=16, per_route_u=True, groups=2), bidir1d(), last=True)
    check(make_inputs(atrous2d(), (5, 5), per_route_dt=True, groups=2, N=16), atrous2d())
    check(make_inputs(bidir1d(), (9,), N=6, per_route_u=True, groups=2), bidir1d(), last=True)  # N < BLOCK_N


def test_seq_backward_lane_sums(monkeypatch):
    """The seq backward's dB / dC reduce-scatter across a full block of 32 channels (BLOCK_N <= BLOCK_D): 16
    states, and 6 states in a block of 8 with a group of 40 channels, so the second channel block is partial."""
    monkeypatch.setenv("VSSM_SCAN_BWD_KERNEL", "seq")
    monkeypatch.setenv("VSSM_SCAN_TILE", "4,4,4")
    check(make_inputs(bidir1d(), (7,), dim=64, N=16, per_route_u=True), bidir1d(), last=True)
    check(make_inputs(cross2d(), (3, 4), dim=80, N=6, groups=2), cross2d())


def test_seq_backward_two_lanes_per_channel(monkeypatch):
    """VSSM_SCAN_BWD_SPLIT=2: each lane holds every other state of its channel (16 channels per warp); per-channel
    sums over states add the partner lane's, dB / dC reduce over the lanes of the same share. Shared and
    per-route u, groups, a gate, the last state's gradient, N below BLOCK_N, and a group too small to split."""
    monkeypatch.setenv("VSSM_SCAN_BWD_KERNEL", "seq")
    monkeypatch.setenv("VSSM_SCAN_BWD_SPLIT", "2")
    monkeypatch.setenv("VSSM_SCAN_TILE", "4,4,4")
    check(make_inputs(bidir1d(), (7,), dim=48, N=16, per_route_u=True), bidir1d(), last=True)
    check(make_inputs(cross2d(), (3, 4), dim=80, N=6, groups=2), cross2d())
    check(make_inputs(atrous2d(), (5, 5), dim=32, per_route_dt=True, groups=2, N=16), atrous2d())
    check(make_inputs(bidir1d(), (5,), dim=8, N=16, per_route_u=True, groups=2), bidir1d(), last=True)


@triton.jit
def _apply_softplus(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(y_ptr + i, kernel_softplus(tl.load(x_ptr + i, mask=i < n, other=0.0)), mask=i < n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_helper_matches_torch(dtype):
    """The kernels' softplus (an atanh series for log1p in fp32, log with a rounding fix-up in fp64) against
    torch's over the whole range: tiny results for very negative inputs (down to the smallest normal fp32,
    exp(-87); GPUs flush denormals), both sides of torch's threshold."""
    x = torch.cat([torch.linspace(-87, 90, 3001, dtype=torch.float64),
                   torch.tensor([-1e-30, 0.0, 1e-30, 1e-7, -1e-7, 19.999, 20.0, 20.001, -20.0, -87.0])])
    x = x.to(dtype).to(DEVICE)
    y = torch.empty_like(x)
    _apply_softplus[(1,)](x, y, x.numel(), BLOCK=4096)
    expected = torch.nn.functional.softplus(x.double())
    rel = ((y.double() - expected).abs() / expected.abs().clamp_min(1e-300)).max().item()
    assert rel < (1e-6 if dtype == torch.float32 else 1e-14), rel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_seq_vector_loads_of_projection_rows(dtype, monkeypatch):
    """B and C cut from one projection row per cell, as Vim's x_proj makes them ((dt_rank | B | C), unit state
    stride, aligned rows): the in-thread kernels load a step's states as vectors (``BC_ALIGN`` 4 in fp32, 8 in
    bf16; the hint is a no-op here, the addressing is not). Several tiles per route, a gate, the last state."""
    monkeypatch.setenv("VSSM_SCAN_FWD_KERNEL", "seq")
    monkeypatch.setenv("VSSM_SCAN_BWD_KERNEL", "seq")
    monkeypatch.setenv("VSSM_SCAN_TILE", "4,4,4")
    routes, grid, N, rank = bidir1d(), (9,), 16, 8
    x = make_inputs(routes, grid, dim=16, N=N, per_route_u=True, dtype=dtype, channels_last=True)
    g = torch.Generator().manual_seed(99)
    rows = torch.randn(1, len(routes), *grid, rank + 2 * N, generator=g).to(dtype).to(DEVICE)
    x["B"], x["C"] = rows[..., rank:rank + N], rows[..., rank + N:]      # strided views; ``run`` keeps them
    Bv, Cv = (t.permute(0, 1, 3, 2)[:, :, None] for t in (x["B"], x["C"]))  # as the launcher sees them
    views = [(t, list(t.stride()[:4]) + [0, 0, t.stride(-1)]) for t in (Bv, Cv)]
    assert launch.state_vector_alignment(*views, block_n=N, n=N) == (4 if dtype == torch.float32 else 8)
    check(x, routes, dtype, channels_last=True, last=True)


@pytest.mark.parametrize("bc", ["fixed", "shared", "grouped"])
def test_one_route_op(bc):
    batch, dim, N, L = 2, 6, 4, 9
    g = torch.Generator().manual_seed(5)
    shapes = {"fixed": (dim, N), "shared": (batch, N, L), "grouped": (batch, 3, N, L)}[bc]
    x = {
        "u": torch.randn(batch, dim, L, generator=g), "delta": torch.randn(batch, dim, L, generator=g) * 0.5,
        "A": -torch.rand(dim, N, generator=g) - 0.2, "B": torch.randn(*shapes, generator=g),
        "C": torch.randn(*shapes, generator=g), "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, L, generator=g), "delta_bias": torch.randn(dim, generator=g) * 0.3,
    }
    results = []
    for backend in ("triton", "reference"):
        leaves = {k: v.clone().to(DEVICE).requires_grad_() for k, v in x.items()}
        args = dict(leaves)
        if bc == "fixed" and backend == "reference":  # the same B/C as one group per channel
            args["B"], args["C"] = (t[None, :, :, None].expand(batch, dim, N, L) for t in (leaves["B"], leaves["C"]))
        y, last = selective_scan(**args, delta_softplus=True, return_last_state=True, backend=backend)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        results.append((y.detach(), last.detach(), {k: v.grad for k, v in leaves.items()}))
    (y_t, s_t, g_t), (y_r, s_r, g_r) = results
    assert s_t.shape == (batch, dim, N)
    assert rel_err(y_t, y_r) < 2e-5 and rel_err(s_t, s_r) < 2e-5
    for k in g_r:
        assert g_t[k].shape == g_r[k].shape and rel_err(g_t[k], g_r[k]) < 2e-5, k


def test_deterministic():
    routes = cross2d()
    x = make_inputs(routes, (2, 3), batch=2, dim=4, N=2)
    first = run("triton", x, routes)
    second = run("triton", x, routes)
    assert torch.equal(first[0], second[0])
    for k in first[2]:
        assert torch.equal(first[2][k], second[2][k]), k


def test_no_grad_path_matches():
    routes = cross2d()
    x = make_inputs(routes, (2, 3))
    args = {k: (v.detach() if v is not None else None) for k, v in x.items()}
    with torch.no_grad():
        y_t = routed_selective_scan(**args, delta_softplus=True, routes=routes, backend="triton")
        y_r = routed_selective_scan(**args, delta_softplus=True, routes=routes, backend="reference")
    assert rel_err(y_t, y_r) < 2e-5


def test_torch_compile_has_no_graph_break():
    routes = bidir1d()
    x = make_inputs(routes, (5,), has_z=False)
    args = {k: v for k, v in x.items()}

    def f(u, delta, A, B, C, D, z, delta_bias):
        return routed_selective_scan(u, delta, A, B, C, D, z, delta_bias, True, routes=routes, backend="triton")

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    y = compiled(**args)
    y.sum().backward()
    y_ref = routed_selective_scan(**{k: (v.detach() if v is not None else None) for k, v in args.items()},
                                  delta_softplus=True, routes=routes, backend="reference")
    assert rel_err(y.detach(), y_ref) < 2e-5
    assert x["u"].grad is not None and torch.isfinite(x["u"].grad).all()


def test_registered_op_passes_opcheck():
    """Schema, fake (meta) implementation and autograd registration of vssm::routed_scan_fwd."""
    from vssm.kernels.triton import autograd  # noqa: F401  (registers vssm::routed_scan_fwd)

    routes = cross2d()
    x = make_inputs(routes, (2, 3), dim=4, N=2, channels_last=True)
    u = x["u"].permute(0, 3, 1, 2)  # channels-last storage seen channels-first, as interface.py passes it
    args = (u, x["delta"].permute(0, 3, 1, 2), x["A"], x["B"].permute(0, 1, 4, 2, 3), x["C"].permute(0, 1, 4, 2, 3),
            x["D"], x["z"].permute(0, 3, 1, 2), x["delta_bias"], True, routes.to_spec(), True, False)
    result = torch.library.opcheck(torch.ops.vssm.routed_scan_fwd.default, args,
                                   test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    assert all(v == "SUCCESS" for v in result.values()), result
