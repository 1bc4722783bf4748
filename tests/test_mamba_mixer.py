"""RoutedMambaMixer against explicit per-route pipelines written with flips / gathers and the one-route scan.

The explicit pipeline is the official bimamba v2 formulation: each route's sequence is materialised (a reversed
copy for the backward route), run through its own causal conv, x_proj, dt_proj and a one-route scan, gated by z,
put back in grid order, summed, divided by the number of routes, and projected out.
"""

import pytest
import torch
import torch.nn.functional as F

from vssm.kernels import Route, bidir1d, cross3d, route_set, selective_scan
from vssm.layers.mamba_mixer import RoutedMambaMixer, route_conv_mode, route_depthwise_conv


def explicit_mixer(mixer: RoutedMambaMixer, x: torch.Tensor, sequences) -> torch.Tensor:
    """``sequences[k]`` = (to_seq, from_seq): (b, c, *grid) -> (b, c, L) and back, written independently."""
    b, grid, dim = x.shape[0], x.shape[1:-1], x.shape[-1]
    xz = mixer.in_proj(x).movedim(-1, 1)                   # (b, 2*d_inner, *grid)
    xs, z = xz.chunk(2, dim=1)
    R, N = mixer.dt_rank, mixer.d_state
    total = 0
    for k, (to_seq, from_seq) in enumerate(sequences):
        s, zs = to_seq(xs), to_seq(z)                      # (b, d_inner, L)
        L = s.shape[-1]
        w = mixer.conv_weight[k].unsqueeze(1)
        u = F.silu(F.conv1d(s, w, mixer.conv_bias[k], padding=mixer.d_conv - 1, groups=s.shape[1])[..., :L])
        x_dbl = torch.einsum("bdl,cd->bcl", u, mixer.x_proj_weight[k])
        dt, Bm, Cm = x_dbl.split([R, N, N], dim=1)
        delta = torch.einsum("brl,dr->bdl", dt, mixer.dt_proj_weight[k])
        y = selective_scan(u, delta, -torch.exp(mixer.A_log[k]), Bm, Cm, mixer.D[k], z=zs,
                           delta_bias=mixer.dt_proj_bias[k], delta_softplus=True, backend="reference")
        total = total + from_seq(y, grid)
    out = total / len(sequences)
    return mixer.out_proj(out.movedim(1, -1))


def bidir_sequences():
    fwd = (lambda t: t, lambda s, grid: s)
    bwd = (lambda t: t.flip(-1), lambda s, grid: s.flip(-1))
    return [fwd, bwd]


@pytest.mark.parametrize("length", [1, 2, 3, 7, 13])
def test_bidirectional_mixer_equals_forward_plus_flipped_backward(length):
    torch.manual_seed(length)
    mixer = RoutedMambaMixer(12, routes=bidir1d(), d_state=4, dt_bias_init_routes=(0,))
    with torch.no_grad():  # a non-trivial conv bias and D on both routes
        mixer.conv_bias.normal_()
        mixer.D.uniform_(0.5, 1.5)
    x = torch.randn(2, length, 12)
    torch.testing.assert_close(mixer(x), explicit_mixer(mixer, x, bidir_sequences()), rtol=1e-5, atol=1e-5)


def test_bidirectional_mixer_gradients_match_explicit_pipeline():
    mixer = RoutedMambaMixer(8, d_state=4)
    x = torch.randn(2, 6, 8, requires_grad=True)
    w = torch.randn(2, 6, 8)
    (mixer(x) * w).sum().backward()
    ours = [x.grad.clone()] + [p.grad.clone() for p in mixer.parameters()]
    x.grad = None
    mixer.zero_grad()
    (explicit_mixer(mixer, x, bidir_sequences()) * w).sum().backward()
    theirs = [x.grad] + [p.grad for p in mixer.parameters()]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_backward_route_conv_is_anticausal_conv_in_original_order():
    x, w, bias = torch.randn(2, 5, 9), torch.randn(5, 4), torch.randn(5)
    backward = bidir1d()[1]
    assert route_conv_mode(backward) == "anticausal"
    on_flipped = F.conv1d(F.pad(x.flip(-1), (3, 0)), w.unsqueeze(1), bias, groups=5).flip(-1)
    torch.testing.assert_close(route_depthwise_conv(x, w, bias, backward, (9,)), on_flipped)


def test_gathered_route_conv_is_causal_along_the_route():
    grid = (3, 2, 4)
    route = cross3d()[2]                                   # D fastest: needs a gather
    assert route_conv_mode(route) == "gather"
    x, w = torch.randn(1, 3, 24), torch.randn(3, 4)
    idx = route.indices(grid)
    seq = F.conv1d(F.pad(x[..., idx], (3, 0)), w.unsqueeze(1), None, groups=3)
    expected = torch.zeros_like(seq)
    expected[..., idx] = seq
    torch.testing.assert_close(route_depthwise_conv(x, w, None, route, grid), expected)


def test_three_routes_on_a_volume_match_explicit_pipeline():
    # SegMamba's set: forward, backward over the flattened volume, and an inter-slice route (D fastest)
    routes = route_set([Route((0, 1, 2)), Route((0, 1, 2), flips=(True, True, True)), Route((1, 2, 0))], "seg3")
    mixer = RoutedMambaMixer(8, routes=routes, d_state=4)
    grid = (3, 2, 5)
    x = torch.randn(2, *grid, 8)

    def flat(t):
        return t.flatten(2)

    def slices(t):                                         # (b, c, D, H, W) -> D fastest
        return t.permute(0, 1, 3, 4, 2).flatten(2)

    def unslices(s, g):
        D, H, W = g
        return s.unflatten(-1, (H, W, D)).permute(0, 1, 4, 2, 3)

    sequences = [(flat, lambda s, g: s.unflatten(-1, g)),
                 (lambda t: flat(t).flip(-1), lambda s, g: s.flip(-1).unflatten(-1, g)),
                 (slices, unslices)]
    torch.testing.assert_close(mixer(x), explicit_mixer(mixer, x, sequences), rtol=1e-5, atol=1e-5)


def test_mixer_gradients_reach_every_parameter():
    mixer = RoutedMambaMixer(8, d_state=4)
    mixer(torch.randn(2, 5, 8)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.parameters())


def test_mixer_initialisation_matches_mamba():
    mixer = RoutedMambaMixer(32, d_state=16, dt_bias_init_routes=(0,))
    assert mixer.dt_rank == 2 and mixer.A_log.shape == (2, 64, 16)
    torch.testing.assert_close(mixer.A_log[1, 3], torch.log(torch.arange(1., 17.)))
    assert torch.all(mixer.D == 1)
    dt = F.softplus(mixer.dt_proj_bias[0])
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6   # forward route: dt in [dt_min, dt_max]
    assert torch.all(mixer.dt_proj_bias[1] == 0)          # backward route: zeroed, as in Vim


def test_mixer_bad_input():
    mixer = RoutedMambaMixer(8, d_state=4)
    with pytest.raises(ValueError, match="expects input"):
        mixer(torch.randn(2, 3, 3, 8))
    with pytest.raises(ValueError, match="every grid cell"):
        RoutedMambaMixer(8, routes=route_set([Route((0,), step=(2,))]))
    with pytest.raises(TypeError, match="RouteSet"):
        RoutedMambaMixer(8, routes=[Route((0,))])
