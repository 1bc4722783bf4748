"""The routed scan against an explicit pipeline: permute/slice + one-route scan + inverse + sum.

The explicit pipelines below are written with plain tensor ops (transpose, flip, slicing), independently of
the route index machinery in ``kernels/routes.py``.
"""

import pytest
import torch

from vssm.kernels import (Route, RouteSet, atrous2d, bidir1d, cross2d, cross3d, route_set, routed_selective_scan,
                          selective_scan, time_route)


# Each explicit route: (forward, inverse) between a channels-first map (b, c, *grid) and a sequence (b, c, L).
def _seq_1d(flip):
    fwd = (lambda x: x.flip(-1)) if flip else (lambda x: x)
    return fwd, fwd


def _seq_2d(transpose, flip):
    def fwd(x):
        x = x.transpose(-1, -2) if transpose else x
        x = x.flatten(-2)
        return x.flip(-1) if flip else x

    def inv(seq, grid):
        H, W = grid
        seq = seq.flip(-1) if flip else seq
        if transpose:
            return seq.unflatten(-1, (W, H)).transpose(-1, -2)
        return seq.unflatten(-1, (H, W))

    return fwd, inv


def explicit_cross2d():
    return [_seq_2d(False, False), _seq_2d(True, False), _seq_2d(False, True), _seq_2d(True, True)]


def explicit_cross3d():
    perms = [(0, 1, 2), (0, 2, 1), (1, 2, 0)]

    def make(perm, flip):
        def fwd(x):
            x = x.permute(0, 1, *(2 + p for p in perm)).flatten(-3)
            return x.flip(-1) if flip else x

        def inv(seq, grid):
            seq = seq.flip(-1) if flip else seq
            x = seq.unflatten(-1, tuple(grid[p] for p in perm))
            inverse = [perm.index(a) for a in range(3)]
            return x.permute(0, 1, *(2 + p for p in inverse))

        return fwd, inv

    return [make(p, False) for p in perms] + [make(p, True) for p in perms]


def explicit_atrous2d():
    """Sub-grid (i, j) of stride 2, scanned row-major or column-major as documented (no reversal)."""
    specs = [((0, 0), False, False), ((1, 0), True, False), ((0, 1), False, False), ((1, 1), True, False)]

    def make(offset, transpose, flip):
        i, j = offset
        inner_fwd, inner_inv = _seq_2d(transpose, flip)

        def fwd(x):
            return inner_fwd(x[..., i::2, j::2])

        def inv(seq, grid):
            H, W = grid
            sub = inner_inv(seq, (len(range(i, H, 2)), len(range(j, W, 2))))
            out = seq.new_zeros(seq.shape[:-1] + (H, W))
            out[..., i::2, j::2] = sub
            return out

        return fwd, inv

    return [make(*s) for s in specs]


def explicit_pipeline(u, delta, A, B, C, D, z, delta_bias, routes_explicit, grid):
    """Route copies + one-route scan per route + inverse + sum: the pipeline the routed op replaces."""
    K = len(routes_explicit)
    out = 0
    for k, (fwd, inv) in enumerate(routes_explicit):
        uk = u[:, k] if u.dim() == len(grid) + 3 else u
        dk = delta[:, k] if delta.dim() == len(grid) + 3 else delta
        ys = selective_scan(fwd(uk), fwd(dk), A[k], fwd(B[:, k]), fwd(C[:, k]),
                            None if D is None else D[k], None,
                            None if delta_bias is None else delta_bias[k], True)
        y = inv(ys, grid) if len(grid) > 1 else inv(ys)
        out = out + y
    assert K == len(routes_explicit)
    if z is not None:
        out = out * torch.nn.functional.silu(z)
    return out


def make_routed_inputs(grid, K, dim=3, N=2, groups=None, per_route=False, batch=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(2)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    lead = (batch, K, dim) if per_route else (batch, dim)
    bc = (batch, K, N) + grid if groups is None else (batch, K, groups, N) + grid
    return dict(u=r(*lead, *grid), delta=r(*lead, *grid, scale=0.5), A=-torch.rand(K, dim, N, generator=g,
                dtype=torch.float64).add(0.2).to(dtype), B=r(*bc), C=r(*bc), D=r(K, dim), z=r(batch, dim, *grid),
                delta_bias=r(K, dim, scale=0.3))


def _run_both(routes, explicit, grid, **kw):
    t = make_routed_inputs(grid, len(routes), **kw)
    y = routed_selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"],
                              True, routes=routes)
    y_explicit = explicit_pipeline(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"],
                                   t["delta_bias"], explicit, grid)
    torch.testing.assert_close(y, y_explicit, rtol=1e-10, atol=1e-10)
    return t, y


@pytest.mark.parametrize("L", [1, 2, 7, 30])
@pytest.mark.parametrize("per_route", [False, True])
def test_bidir1d(L, per_route):
    _run_both(bidir1d(), [_seq_1d(False), _seq_1d(True)], (L,), per_route=per_route)


def test_time_route():
    _run_both(time_route(), [_seq_1d(False)], (9,))


@pytest.mark.parametrize("grid", [(1, 1), (1, 5), (3, 5), (5, 3), (7, 9)])
@pytest.mark.parametrize("groups", [None, 3])
def test_cross2d(grid, groups):
    _run_both(cross2d(), explicit_cross2d(), grid, groups=groups)


@pytest.mark.parametrize("grid", [(2, 2), (3, 5), (5, 4), (7, 7), (2, 3)])
def test_atrous2d_unequal_subgrids(grid):
    _run_both(atrous2d(), explicit_atrous2d(), grid, per_route=True)


@pytest.mark.parametrize("grid", [(1, 2, 3), (3, 4, 5), (2, 2, 2)])
def test_cross3d(grid):
    _run_both(cross3d(), explicit_cross3d(), grid)


def test_custom_route_set_from_spec():
    # Column-major over the odd columns, walked bottom-up; then plain row-major over everything.
    routes = route_set([dict(order=(1, 0), flips=(True, False), start=(0, 1), step=(1, 2)), ((0, 1),)])

    def fwd0(x):
        return x[..., :, 1::2].flip(-2).transpose(-1, -2).flatten(-2)

    def inv0(seq, grid):
        H, W = grid
        sub = seq.unflatten(-1, (len(range(1, W, 2)), H)).transpose(-1, -2).flip(-2)
        out = seq.new_zeros(seq.shape[:-1] + (H, W))
        out[..., :, 1::2] = sub
        return out

    _run_both(routes, [(fwd0, inv0), _seq_2d(False, False)], (4, 5))


def test_channels_last_layout_matches_channels_first():
    grid = (3, 4)
    t = make_routed_inputs(grid, 4, groups=3, per_route=True)
    y = routed_selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"], True,
                              routes=cross2d())
    u_cl, d_cl = t["u"].permute(0, 1, 3, 4, 2), t["delta"].permute(0, 1, 3, 4, 2)  # (b, K, H, W, d)
    B_cl, C_cl = t["B"].permute(0, 1, 4, 5, 2, 3), t["C"].permute(0, 1, 4, 5, 2, 3)  # (b, K, H, W, G, N)
    y_cl = routed_selective_scan(u_cl, d_cl, t["A"], B_cl, C_cl, t["D"], t["z"].permute(0, 2, 3, 1),
                                 t["delta_bias"], True, routes=cross2d(), channels_last=True)
    assert y_cl.shape == (2, 3, 4, 3)
    torch.testing.assert_close(y_cl.permute(0, 3, 1, 2), y, rtol=1e-12, atol=1e-12)


def test_last_states_per_route():
    grid = (3, 4)
    t = make_routed_inputs(grid, 4)
    _, last = routed_selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], routes=cross2d(),
                                    delta_softplus=True, return_last_state=True)
    assert last.shape == (2, 4, 3, 2)
    # route 0 is row-major: its last state is the one-route scan's last state over the flattened map
    _, expected = selective_scan(t["u"].flatten(2), t["delta"].flatten(2), t["A"][0], t["B"][:, 0].flatten(2),
                                 t["C"][:, 0].flatten(2), delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(last[:, 0], expected)


def test_gradcheck_routed():
    t = make_routed_inputs((2, 3), 4, dim=2, N=2, batch=1, per_route=True)
    args = [t[k].requires_grad_(True) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]

    def fn(*a):
        return routed_selective_scan(*a, True, routes=atrous2d())

    assert torch.autograd.gradcheck(fn, tuple(args), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_routed_low_precision(dtype):
    t = make_routed_inputs((5, 6), 4, dim=4, N=4)
    y64 = routed_selective_scan(*(t[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True,
                                routes=cross2d())
    y = routed_selective_scan(*(t[k].to(dtype) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                              True, routes=cross2d())
    assert y.dtype == dtype
    rel = (y.double() - y64).abs().max() / y64.abs().max()
    assert rel < (1e-5 if dtype == torch.float32 else 3e-2)


def test_route_orders_are_as_documented():
    # cross2d on a 2x3 grid (cells numbered row-major)
    idx = [r.indices((2, 3)).tolist() for r in cross2d()]
    assert idx == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5], [5, 4, 3, 2, 1, 0], [5, 2, 4, 1, 3, 0]]
    # atrous2d visits every cell of an odd grid exactly once
    cells = torch.cat(atrous2d().indices((5, 3)))
    assert sorted(cells.tolist()) == list(range(15))
    # cross3d: route 2 has depth fastest
    assert cross3d()[2].indices((2, 2, 2)).tolist()[:2] == [0, 4]
    assert Route((0,), flips=(True,)).indices((4,)).tolist() == [3, 2, 1, 0]


_CUSTOM = route_set([dict(order=(1, 0), flips=(True, False), start=(0, 1), step=(1, 2)), ((0, 1),)], "odd_cols")


@pytest.mark.parametrize("routes", [bidir1d(), cross2d(), atrous2d(), cross3d(), time_route(), _CUSTOM],
                         ids=lambda r: r.name)
def test_route_spec_round_trip(routes):
    spec = routes.to_spec()
    # plain Python ints only: the op schema (List[int]) and TorchScript attributes take nothing else
    assert type(spec) is list and all(type(v) is int for v in spec)
    assert spec[:2] == [len(routes), routes.ndim] and len(spec) == 2 + 4 * len(routes) * routes.ndim
    back = RouteSet.from_spec(spec, name=routes.name)
    assert back == routes and back.name == routes.name
    assert RouteSet.from_spec(tuple(spec), routes.name) is back  # cached: rebuilt on every forward
    assert RouteSet.from_spec(spec).name == "custom"


def test_route_spec_survives_torchscript():
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.route_spec = cross3d().to_spec()

        def forward(self, x):
            return x * len(self.route_spec)

    scripted = torch.jit.script(Holder())
    assert RouteSet.from_spec(scripted.route_spec, "cross3d") == cross3d()


@pytest.mark.parametrize("spec", [[], [1], [0, 2], [1, 2, 0, 1], cross2d().to_spec()[:-1]])
def test_route_spec_rejects_malformed(spec):
    with pytest.raises(ValueError):
        RouteSet.from_spec(spec)
