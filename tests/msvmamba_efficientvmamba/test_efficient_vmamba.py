"""EfficientVMamba: official sizes, checkpoint key coverage, the atrous routes against the reference's slicing,
the routed scan against explicit gather + one-route scans + scatter (even and odd sides, with and without the
reference's padding), odd sizes, training."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.kernels import atrous2d, selective_scan
from vssm.layers import RoutedSSM
from vssm.models.efficient_vmamba import checkpoint_filter_fn

from ms_ev_official_keys import EFFICIENT_VMAMBA_CONFIGS, efficient_vmamba_shapes

# the released training logs' counts, reproduced from the reference module tree
OFFICIAL_PARAMS = {"efficient_vmamba_tiny": 6_493_660, "efficient_vmamba_small": 11_273_688,
                   "efficient_vmamba_base": 33_717_136}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_param_count_matches_official(name):
    model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


def _official_shapes(name):
    depths, dims, d_state = EFFICIENT_VMAMBA_CONFIGS[name]
    return efficient_vmamba_shapes(depths, dims, d_state=d_state)


@pytest.mark.parametrize("name", sorted(EFFICIENT_VMAMBA_CONFIGS))
def test_checkpoint_filter_covers_every_official_key(name):
    model = timm.create_model(name, device="meta")
    out = checkpoint_filter_fn({k: torch.empty(s, device="meta") for k, s in _official_shapes(name).items()}, model)
    ours = model.state_dict()
    assert set(out) == set(ours)
    assert all(out[k].shape == ours[k].shape for k in ours)


def test_checkpoint_filter_places_values_and_reports_errors():
    g = torch.Generator().manual_seed(0)
    official = {k: (torch.tensor(7) if s == () else torch.randn(s, generator=g))
                for k, s in _official_shapes("test_efficient_vmamba").items()}
    model = timm.create_model("test_efficient_vmamba")
    model.load_state_dict(checkpoint_filter_fn({"state_dict": {"module." + k: v for k, v in official.items()}},
                                               model), strict=True)
    block = model.stages[1].blocks[0]
    assert torch.equal(block.mixer.ssm.A_log.flatten(0, 1), official["layers.1.blocks.0.op.A_logs"])
    assert torch.equal(block.conv_branch.norm.running_var, official["layers.1.blocks.0.conv_branch.1.running_var"])
    assert torch.equal(block.channel_attention.fc2.bias, official["layers.1.blocks.0.se.channel_select.bias"])
    ir = model.stages[2].blocks[1]  # official layers.2.2 (layers.2.0 is a permute)
    assert torch.equal(ir.bn3.running_mean, official["layers.2.2.conv_pw2.1.running_mean"])
    assert torch.equal(ir.se.conv_expand.weight, official["layers.2.2.se.conv_expand.weight"])
    # the merge after the conv stage 2 (depth 2: layers.2.4) is the downsample before our stage 3
    assert torch.equal(model.stages[3].downsample.reduction.weight, official["layers.2.4.reduction.weight"])
    assert torch.equal(model.stages[1].downsample.norm.bias, official["layers.0.downsample.norm.bias"])

    meta = timm.create_model("test_efficient_vmamba", device="meta")
    with pytest.raises(ValueError, match="layers.2.9"):
        checkpoint_filter_fn(dict(official, **{"layers.2.9.conv_pw.0.weight": torch.zeros(1)}), meta)
    with pytest.raises(ValueError, match="channel_attention.norm"):
        checkpoint_filter_fn({k: v for k, v in official.items() if ".se.norm." not in k}, meta)


def _reference_subgrids(x: torch.Tensor):
    """The reference's four atrous sequences of a (..., H, W) map (its EfficientScan without the padding):
    [::2, ::2] row-major, [1::2, ::2] column-major, [::2, 1::2] row-major, [1::2, 1::2] column-major."""
    xt = x.transpose(-1, -2)
    return [x[..., ::2, ::2], xt[..., ::2, 1::2], x[..., ::2, 1::2], xt[..., 1::2, 1::2]]


@pytest.mark.parametrize("hw", [(4, 6), (5, 7), (3, 2), (1, 5)])
def test_atrous_routes_follow_the_reference_order(hw):
    grid = torch.arange(hw[0] * hw[1]).reshape(hw)
    for route, sub in zip(atrous2d(), _reference_subgrids(grid)):
        assert torch.equal(route.indices(hw), sub.flatten())


def _explicit_atrous_scan(ssm: RoutedSSM, x: torch.Tensor, pad_to_even: bool) -> torch.Tensor:
    """Gather each atrous sub-grid by slicing, scan it alone with its route's parameters (the one-route op),
    write it back in place and sum; with ``pad_to_even`` first zero-pad odd sides as the reference does and
    crop after."""
    H, W = x.shape[-2:]
    if pad_to_even:
        x = F.pad(x, (0, W % 2, 0, H % 2))
    delta, B, C = ssm.project(x)                     # channels-first: (b, K, d, H, W), (b, K, N, H, W)
    A = -torch.exp(ssm.A_log)
    index = torch.arange(x.shape[-2] * x.shape[-1]).reshape(x.shape[-2:])
    y = torch.zeros_like(x).flatten(2)
    for k, cells in enumerate(_reference_subgrids(index)):
        cells = cells.flatten()
        if cells.numel() == 0:  # a sub-grid starting at offset 1 of a side of 1: nothing to scan
            continue

        def seq(t):
            return t.flatten(-2)[..., cells]

        yk = selective_scan(seq(x), seq(delta[:, k]), A[k], seq(B[:, k]), seq(C[:, k]), ssm.D[k],
                            delta_bias=ssm.dt_proj_bias[k], delta_softplus=True)
        y[..., cells] += yk
    return y.reshape(x.shape)[..., :H, :W]


@pytest.mark.parametrize("hw", [(6, 8), (5, 7), (1, 4), (7, 1)])
@pytest.mark.parametrize("pad", [False, True])
def test_routed_atrous_scan_equals_explicit_pipeline(hw, pad):
    ssm = RoutedSSM(6, routes=atrous2d(), d_state=3, dt_rank=2, channels_last=False,
                    pad_to_multiple=2 if pad else 1, skip_empty_routes=True)
    with torch.no_grad():
        ssm.D.add_(0.3 * torch.randn_like(ssm.D))
    x = torch.randn(2, 6, *hw)
    torch.testing.assert_close(ssm(x), _explicit_atrous_scan(ssm, x, pad), atol=1e-5, rtol=1e-4)


def test_padding_only_matters_at_odd_sides():
    torch.manual_seed(0)
    plain = RoutedSSM(6, routes=atrous2d(), d_state=3, dt_rank=2)
    padded = RoutedSSM(6, routes=atrous2d(), d_state=3, dt_rank=2, pad_to_multiple=2)
    padded.load_state_dict(plain.state_dict())
    even, odd = torch.randn(1, 6, 8, 6), torch.randn(1, 7, 5, 6)  # channels-last maps
    torch.testing.assert_close(plain(even), padded(even))
    assert not torch.allclose(plain(odd), padded(odd), atol=1e-6)


def test_channels_last_matches_channels_first():
    first = RoutedSSM(6, routes=atrous2d(), d_state=3, dt_rank=2, channels_last=False)
    last = RoutedSSM(6, routes=atrous2d(), d_state=3, dt_rank=2, channels_last=True)
    last.load_state_dict(first.state_dict())
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(last(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), first(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("hw", [(36, 52), (4, 20), (66, 30)])
def test_odd_sizes_forward_and_features(hw):
    model = timm.create_model("test_efficient_vmamba", num_classes=5).eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    size = (hw[0] // 4, hw[1] // 4)
    for i, f in enumerate(feats):
        assert f.shape[1] == model.feature_info[i]["num_chs"] and f.shape[2:] == size
        size = (-(-size[0] // 2), -(-size[1] // 2))


def test_one_cell_wide_maps_match_the_reference_padding():
    """Maps one cell high: the routes starting at row 1 are empty (skipped) here, all-padding in the
    reference, so both give the same output."""
    torch.manual_seed(0)
    ours = timm.create_model("test_efficient_vmamba").eval()
    padded = timm.create_model("test_efficient_vmamba", atrous_pad_odd=True).eval()
    padded.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 4, 20)  # SSM stages at 1 x 5 and 1 x 3
    with torch.no_grad():
        torch.testing.assert_close(ours(x), padded(x))


def test_training_steps_reduce_loss_and_reach_every_parameter():
    model = timm.create_model("test_efficient_vmamba", num_classes=3)
    x = torch.randn(6, 3, 32, 32)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(8):
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert [n for n, p in model.named_parameters() if p.grad is None] == []
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_arguments():
    with pytest.raises(ValueError, match="ssm_stages"):
        timm.create_model("test_efficient_vmamba", ssm_stages=5)
    with pytest.raises(ValueError, match="pad_to_multiple"):
        RoutedSSM(6, routes=atrous2d(), pad_to_multiple=0)
    with pytest.raises(TypeError):
        timm.create_model("test_efficient_vmamba", not_an_option=1)


def test_pretrained_file_through_timm(tmp_path):
    """A released-format .pth loads through timm, also with a new classifier size."""
    g = torch.Generator().manual_seed(0)
    official = {k: (torch.tensor(7) if s == () else torch.randn(s, generator=g))
                for k, s in _official_shapes("test_efficient_vmamba").items()}
    path = tmp_path / "efficient_vmamba.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in official.items()}}, path)
    model = timm.create_model("test_efficient_vmamba", pretrained=True, num_classes=7,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.weight.shape == (7, 64)
    assert torch.equal(model.stages[0].blocks[0].mixer.ssm.x_proj_weight,
                       official["layers.0.blocks.0.op.x_proj_weight"])
