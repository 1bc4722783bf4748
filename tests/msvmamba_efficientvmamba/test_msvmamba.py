"""MSVMamba: official sizes, checkpoint key coverage, the multi-scale scan against an explicit pipeline written
the way the reference computes it (flips / transposes, one concatenated scan), odd sizes, training."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.kernels import RouteSet, cross2d, selective_scan
from vssm.layers.ms_ss2d import ChainedRoutedSSM, MultiScaleSS2D, ms2d_coarse_routes
from vssm.models.msvmamba import checkpoint_filter_fn

from ms_ev_official_keys import MSVMAMBA_CONFIGS, msvmamba_shapes

# counted from the official module trees built from the released configs (configs/ms_vssm/*.yaml)
OFFICIAL_PARAMS = {"msvmamba_nano": 6_864_136, "msvmamba_micro": 11_879_272, "msvmamba_tiny": 33_046_312}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_param_count_matches_official(name):
    model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]


def _random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(3) if s == () else torch.randn(s, generator=g)) for k, s in shapes.items()}


@pytest.mark.parametrize("name", sorted(MSVMAMBA_CONFIGS))
def test_checkpoint_filter_covers_every_official_key(name):
    depths, dims = MSVMAMBA_CONFIGS[name]
    model = timm.create_model(name, device="meta")
    shapes = msvmamba_shapes(depths, dims)
    out = checkpoint_filter_fn({k: torch.empty(s, device="meta") for k, s in shapes.items()}, model)
    ours = model.state_dict()
    assert set(out) == set(ours)
    assert all(out[k].shape == ours[k].shape for k in ours)


def test_checkpoint_filter_places_values():
    depths, dims = MSVMAMBA_CONFIGS["test_msvmamba"]
    official = _random_state(msvmamba_shapes(depths, dims))
    model = timm.create_model("test_msvmamba")
    # a released .pth holds {"model": ...}; DDP exports add "module."
    wrapped = {"model": {"module." + k: v for k, v in official.items()}}
    model.load_state_dict(checkpoint_filter_fn(wrapped, model), strict=True)
    mixer = model.stages[2].blocks[1].mixer
    op = "layers.2.blocks.1.op."
    d = mixer.d_inner
    # parameter set 0 of the reference serves the coarse (chained) branch, set 1 the full-resolution route
    assert torch.equal(mixer.ssm_coarse.x_proj_weight, official[op + "x_proj_weight"][:1])
    assert torch.equal(mixer.ssm.dt_proj_bias, official[op + "dt_projs_bias"][1:])
    assert torch.equal(mixer.ssm_coarse.A_log[0], official[op + "A_logs"][:d])
    assert torch.equal(mixer.ssm.D[0], official[op + "Ds"][d:])
    assert torch.equal(mixer.conv_coarse.weight, official[op + "conv2d_b1.weight"])
    assert torch.equal(mixer.se.fc2.weight, official[op + "se.fc.2.weight"])
    assert torch.equal(model.stages[2].blocks[1].mlp.fc1.weight,
                       official["layers.2.blocks.1.convFFN.linear1.weight"].flatten(1))
    assert torch.equal(model.stages[3].downsample.reduction.weight, official["layers.2.downsample.reduction.weight"])
    assert torch.equal(model.head.fc.weight, official["classifier.head.weight"])


def test_checkpoint_filter_old_names_and_errors():
    depths, dims = MSVMAMBA_CONFIGS["test_msvmamba"]
    model = timm.create_model("test_msvmamba", device="meta")
    old = {k: torch.empty(s, device="meta") for k, s in msvmamba_shapes(depths, dims, old_names=True).items()}
    assert set(checkpoint_filter_fn(dict(old), model)) == set(model.state_dict())
    extra = dict(old, **{"layers.0.blocks.0.op.extra_thing": torch.empty(1, device="meta")})
    with pytest.raises(ValueError, match="extra_thing"):
        checkpoint_filter_fn(extra, model)
    short = {k: v for k, v in old.items() if "conv2d_b1" not in k}
    with pytest.raises(ValueError, match="conv_coarse"):
        checkpoint_filter_fn(short, model)


def _explicit_mixer(mixer: MultiScaleSS2D, x: torch.Tensor) -> torch.Tensor:
    """The reference's MS2D forward written out: the coarse map's three scans (row-major reversed,
    column-major, column-major reversed) built with flips / transposes, concatenated into ONE sequence for one
    single-route scan, un-flipped and summed after a per-step LayerNorm; the full map scanned row-major."""
    b, h, w, _ = x.shape
    xz = F.linear(x, mixer.in_proj.weight)
    u, z = xz.chunk(2, dim=-1)
    z = F.silu(z)
    u = u.permute(0, 3, 1, 2)
    fine = F.silu(mixer.conv(u))
    coarse = F.silu(mixer.conv_coarse(u))

    def scan(seq, ssm):  # one parameter set (index 0 of ``ssm``) along a (b, d, L) sequence
        R, N = ssm.dt_rank, ssm.d_state
        dt, B, C = torch.split(torch.einsum("bdl,cd->bcl", seq, ssm.x_proj_weight[0]), [R, N, N], dim=1)
        delta = torch.einsum("brl,dr->bdl", dt, ssm.dt_proj_weight[0])
        y = selective_scan(seq, delta, -torch.exp(ssm.A_log[0]), B, C, ssm.D[0], delta_bias=ssm.dt_proj_bias[0],
                           delta_softplus=True)
        return mixer.out_norm(y.transpose(1, 2))  # (b, L, d)

    y_fine = scan(fine.flatten(2), mixer.ssm).reshape(b, h, w, -1)
    hc, wc = coarse.shape[2:]
    L = hc * wc
    seq = torch.cat([coarse.flatten(2).flip(-1), coarse.transpose(2, 3).flatten(2),
                     coarse.transpose(2, 3).flatten(2).flip(-1)], dim=2)
    y = scan(seq, mixer.ssm_coarse)
    y_coarse = (y[:, :L].flip(1).reshape(b, hc, wc, -1)
                + y[:, L:2 * L].reshape(b, wc, hc, -1).transpose(1, 2)
                + y[:, 2 * L:].flip(1).reshape(b, wc, hc, -1).transpose(1, 2))
    y_coarse = F.interpolate(y_coarse.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
    y = y_fine + y_coarse.permute(0, 2, 3, 1)
    gate = torch.sigmoid(mixer.se.fc2(F.relu(mixer.se.fc1(y.mean(dim=(1, 2), keepdim=True)))))
    return F.linear(y * gate * z, mixer.out_proj.weight)


@pytest.mark.parametrize("hw", [(8, 8), (7, 5), (1, 3)])
def test_mixer_equals_explicit_reference_pipeline(hw):
    mixer = MultiScaleSS2D(12, d_state=2)
    with torch.no_grad():
        for p in mixer.parameters():  # move off the init values (LayerNorm 1/0, D = 1, ...)
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, *hw, 12)
    torch.testing.assert_close(mixer(x), _explicit_mixer(mixer, x), atol=2e-5, rtol=1e-4)


def test_coarse_routes_are_chained():
    """The reference scans row-major reversed, column-major, column-major reversed as one sequence, so the
    state at the end of one route flows into the next; each route alone would start from zero."""
    routes = ms2d_coarse_routes()
    grid = torch.arange(20).reshape(4, 5)
    expected = torch.cat([grid.flatten().flip(0), grid.t().flatten(), grid.t().flatten().flip(0)])
    ssm = ChainedRoutedSSM(8, routes=routes, d_state=2, dt_rank=2)
    x = torch.randn(1, 8, 4, 5)
    y, index = ssm(x)
    assert y.shape == (1, 8, 60) and torch.equal(index, expected)

    def alone(k):
        solo = ChainedRoutedSSM(8, routes=RouteSet(routes.routes[k:k + 1]), d_state=2, dt_rank=2)
        solo.load_state_dict(ssm.state_dict())
        return solo(x)[0]

    torch.testing.assert_close(y[..., :20], alone(0))                  # the first route starts from zero
    assert not torch.allclose(y[..., 20:40], alone(1), atol=1e-4)      # the second from the first's state


@pytest.mark.parametrize("hw", [(36, 52), (8, 12), (66, 30)])
def test_odd_sizes_forward_and_features(hw):
    model = timm.create_model("test_msvmamba", num_classes=5).eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    size = (hw[0] // 4, hw[1] // 4)
    for i, f in enumerate(feats):
        assert f.shape[1] == model.feature_info[i]["num_chs"] and f.shape[2:] == size
        size = (-(-size[0] // 2), -(-size[1] // 2))


def test_training_steps_reduce_loss_and_reach_every_parameter():
    model = timm.create_model("test_msvmamba", num_classes=3)
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
    with pytest.raises(ValueError, match="channels_last"):
        MultiScaleSS2D(8, channels_last=False)
    with pytest.raises(ValueError, match="coarse_conv_size"):
        MultiScaleSS2D(8, coarse_conv_size=4)
    with pytest.raises(TypeError, match="RouteSet"):
        ChainedRoutedSSM(8, routes=[cross2d()[0]])
    with pytest.raises(TypeError):
        timm.create_model("test_msvmamba", not_an_option=1)


def test_pretrained_file_through_timm(tmp_path):
    """A released-format .pth loads through timm (``pretrained_cfg_overlay=dict(file=...)``), also with a
    new classifier size (timm drops the old head after the filter)."""
    depths, dims = MSVMAMBA_CONFIGS["test_msvmamba"]
    official = _random_state(msvmamba_shapes(depths, dims))
    path = tmp_path / "msvmamba.pth"
    torch.save({"model": official, "epoch": 299}, path)
    model = timm.create_model("test_msvmamba", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.head.fc.weight, official["classifier.head.weight"])
    model = timm.create_model("test_msvmamba", pretrained=True, num_classes=7,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.fc.weight.shape == (7, dims[-1])
    assert torch.equal(model.stem.proj.weight, official["patch_embed.0.weight"])
