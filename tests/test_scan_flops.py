"""Scan FLOP accounting: the tally sees every scan call with mamba_ssm's formula."""

import torch

from vssm.kernels import count_scan_flops, cross2d, routed_selective_scan, selective_scan, atrous2d


def test_one_route_formula():
    b, d, L, N = 2, 3, 5, 4
    with count_scan_flops() as tally:
        selective_scan(torch.randn(b, d, L), torch.rand(b, d, L), -torch.rand(d, N), torch.randn(b, N, L),
                       torch.randn(b, N, L), D=torch.randn(d), z=torch.randn(b, d, L))
    assert tally.calls == 1
    assert tally.total == 9 * b * L * d * N + b * d * L + b * d * L


def test_routed_formula_sums_route_lengths():
    b, d, N, H, W = 1, 2, 3, 5, 3
    K = 4

    def run(routes):
        selective_inputs = dict(u=torch.randn(b, d, H, W), delta=torch.rand(b, K, d, H, W), A=-torch.rand(K, d, N),
                                B=torch.randn(b, K, N, H, W), C=torch.randn(b, K, N, H, W), D=torch.randn(K, d))
        with count_scan_flops() as tally:
            routed_selective_scan(**selective_inputs, routes=routes)
        return tally.total

    # cross2d: 4 full routes; atrous2d: the 4 sub-grids partition the map (15 cells in all)
    assert run(cross2d()) == 4 * (9 * b * H * W * d * N + b * d * H * W)
    assert run(atrous2d()) == 9 * b * (H * W) * d * N + b * d * H * W


def test_nested_tallies_and_no_tally():
    args = (torch.randn(1, 2, 3), torch.rand(1, 2, 3), -torch.rand(2, 1), torch.randn(1, 1, 3), torch.randn(1, 1, 3))
    selective_scan(*args)  # no open tally: nothing recorded anywhere
    with count_scan_flops() as outer:
        with count_scan_flops() as inner:
            selective_scan(*args)
        selective_scan(*args)
    assert inner.calls == 1 and outer.calls == 2 and outer.total == 2 * inner.total == 2 * 9 * 3 * 2
