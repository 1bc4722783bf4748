"""VM-UNet, SegMamba and VSSMUNet: official module trees, parameter counts, converters, route semantics,
MONAI bundle builds, bad input, compile / bf16 / checkpointing."""

import json
import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("monai")

from vssm.kernels import selective_scan  # noqa: E402
from vssm.medical import (SegMamba, TriOrientedMambaLayer, VMUNet, VSSMUNet, convert_segmamba_official,  # noqa: E402
                          convert_vmunet_official, vmunet_init_from_vmamba_v0, vmunet_isic, vmunet_synapse)

HERE = os.path.dirname(__file__)
CONFIGS = os.path.join(HERE, "..", "..", "configs", "medical")
OFFICIAL = json.load(open(os.path.join(HERE, "official_keys.json")))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(tuple(s), generator=g) for k, s in shapes.items()}


# --- published settings: parameter counts of the official module trees (built on the meta device) ----------

def test_published_parameter_counts():
    with torch.device("meta"):
        assert n_params(vmunet_isic()) == 27_427_561
        assert n_params(vmunet_synapse()) == 27_427_761
        assert n_params(SegMamba(in_channels=4, out_channels=4)) == 67_416_196
        # official argument names give the same network
        assert n_params(SegMamba(in_chans=4, out_chans=4, feat_size=[48, 96, 192, 384])) == 67_416_196
        assert n_params(VMUNet(input_channels=3, num_classes=9)) == 27_427_761


def test_official_key_lists_match_the_counts():
    count = lambda shapes: sum(torch.Size(s).numel() for s in shapes.values())  # noqa: E731
    assert count(OFFICIAL["vmunet_isic"]) == 27_427_561
    assert count(OFFICIAL["segmamba"]) == 67_416_196


def test_official_vmunet_checkpoint_loads():
    with torch.device("meta"):
        net = vmunet_isic()
    sd = {k: torch.empty(tuple(s), device="meta") for k, s in OFFICIAL["vmunet_isic"].items()}
    out, report = convert_vmunet_official({"model": sd}, net)
    assert not report["unmapped"] and not report["missing"]
    assert len(report["mapped"]) == len(sd)
    net.load_state_dict(out, strict=True, assign=True)


def test_official_segmamba_checkpoint_loads():
    with torch.device("meta"):
        net = SegMamba(in_channels=4, out_channels=4)
    sd = {k: torch.empty(tuple(s), device="meta") for k, s in OFFICIAL["segmamba"].items()}
    out, report = convert_segmamba_official(sd, net)
    assert not report["unmapped"] and not report["missing"]
    net.load_state_dict(out, strict=True, assign=True)


def _v0_classifier_shapes(depths=(2, 2, 27, 2), dims=(96, 192, 384, 768), d_state=16):
    """Names and shapes of a VMamba v0 classification checkpoint (VMamba-S: depths 2-2-27-2)."""
    shapes = {"patch_embed.proj.weight": (dims[0], 3, 4, 4), "patch_embed.proj.bias": (dims[0],),
              "patch_embed.norm.weight": (dims[0],), "patch_embed.norm.bias": (dims[0],),
              "norm.weight": (dims[-1],), "norm.bias": (dims[-1],), "head.weight": (1000, dims[-1]),
              "head.bias": (1000,)}
    for i, (depth, d) in enumerate(zip(depths, dims)):
        inner, rank = 2 * d, -(-d // 16)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            shapes.update({
                p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
                p + "self_attention.in_proj.weight": (2 * inner, d),
                p + "self_attention.conv2d.weight": (inner, 1, 3, 3), p + "self_attention.conv2d.bias": (inner,),
                p + "self_attention.x_proj_weight": (4, rank + 2 * d_state, inner),
                p + "self_attention.dt_projs_weight": (4, inner, rank),
                p + "self_attention.dt_projs_bias": (4, inner),
                p + "self_attention.A_logs": (4 * inner, d_state), p + "self_attention.Ds": (4 * inner,),
                p + "self_attention.out_norm.weight": (inner,), p + "self_attention.out_norm.bias": (inner,),
                p + "self_attention.out_proj.weight": (d, inner)})
        if i < len(depths) - 1:
            shapes.update({f"layers.{i}.downsample.norm.weight": (4 * d,), f"layers.{i}.downsample.norm.bias": (4 * d,),
                           f"layers.{i}.downsample.reduction.weight": (2 * d, 4 * d)})
    return shapes


def test_vmunet_init_from_vmamba_v0_mirrors_encoder_into_decoder():
    net = VMUNet(3, 1, depths=(2, 2, 2, 2), depths_decoder=(2, 2, 2, 1), feature_size=8, d_state=4)
    shapes = _v0_classifier_shapes(depths=(2, 2, 5, 2), dims=(8, 16, 32, 64), d_state=4)
    sd = random_state(shapes)
    out, report = vmunet_init_from_vmamba_v0({"model": sd}, net)
    assert "head.weight" in report["unmapped"] and "layers.2.blocks.4.ln_1.weight" in report["unmapped"]
    assert set(report["mapped"]) | set(report["unmapped"]) == set(sd)
    # what stays at init: the decoder's expanders and the head convs, nothing else
    assert all(k.startswith(("final_", "decoder.")) for k in report["missing"])
    assert not [k for k in report["missing"] if ".blocks." in k]
    net.load_state_dict(out, strict=False)
    own = net.state_dict()
    assert torch.equal(own["encoder.2.blocks.1.mixer.ssm.A_log"], sd["layers.2.blocks.1.self_attention.A_logs"].reshape(4, 64, 4))
    assert torch.equal(own["decoder.1.blocks.1.norm1.weight"], sd["layers.2.blocks.1.ln_1.weight"])
    assert torch.equal(own["decoder.3.blocks.0.mixer.in_proj.weight"], sd["layers.0.blocks.0.self_attention.in_proj.weight"])


# --- SegMamba's tri-orientated layer vs the official algorithm written as three separate scans ----------------

def _official_style_tri_mamba(layer: TriOrientedMambaLayer, x: torch.Tensor, num_slices: int) -> torch.Tensor:
    """The official fork's forward restated with one-route scans: a forward scan, a scan of the flipped
    sequence flipped back, and a scan of the chunk-interleaved sequence put back in place."""
    m = layer.mixer
    b, c = x.shape[:2]
    seq = layer.norm(x.flatten(2).transpose(1, 2))                 # (b, L, c)
    L = seq.shape[1]
    xz = m.in_proj(seq).transpose(1, 2)                            # (b, 2 d_inner, L)

    def branch(k, xz_k):
        xs, z = xz_k.chunk(2, dim=1)
        w = m.conv_weight[k]
        xs = F.silu(F.conv1d(F.pad(xs, (w.shape[-1] - 1, 0)), w[:, None], m.conv_bias[k], groups=xs.shape[1]))
        dbl = torch.einsum("bdl,cd->bcl", xs, m.x_proj_weight[k])
        dt, B, C = torch.split(dbl, [m.dt_rank, m.d_state, m.d_state], dim=1)
        delta = torch.einsum("brl,dr->bdl", dt, m.dt_proj_weight[k])
        return selective_scan(xs, delta, -torch.exp(m.A_log[k]), B, C, m.D[k], z=z, delta_bias=m.dt_proj_bias[k],
                              delta_softplus=True)

    fwd = branch(0, xz)
    bwd = branch(1, xz.flip(-1)).flip(-1)
    inter = torch.stack(xz.chunk(num_slices, dim=-1), dim=-1).flatten(-2)
    s = branch(2, inter).reshape(b, -1, L // num_slices, num_slices).permute(0, 1, 3, 2).flatten(-2)
    out = m.out_proj((fwd + bwd + s).transpose(1, 2))
    return out.transpose(1, 2).reshape(x.shape) + x


@pytest.mark.parametrize("shape,num_slices", [((4, 3, 5), 4), ((2, 4, 4), 8)])
def test_tri_orientated_layer_matches_official_order(shape, num_slices):
    torch.manual_seed(0)
    x = torch.randn(2, 8, *shape)
    chunks = TriOrientedMambaLayer(8, d_state=4, inter_slice="chunks", num_slices=num_slices)
    with torch.no_grad():
        chunks.mixer.A_log.add_(0.3 * torch.randn_like(chunks.mixer.A_log))
        chunks.mixer.D.add_(torch.randn_like(chunks.mixer.D))
        want = _official_style_tri_mamba(chunks, x, num_slices)
        assert torch.allclose(chunks(x), want, atol=1e-5)
        depth = TriOrientedMambaLayer(8, d_state=4, inter_slice="depth")
        depth.load_state_dict(chunks.state_dict())
        if num_slices == shape[0]:  # the official order is "depth fastest" exactly when depth == num_slices
            assert torch.allclose(depth(x), want, atol=1e-5)
        else:
            assert not torch.allclose(depth(x), want, atol=1e-3)


def test_segmamba_chunks_mode_needs_divisible_volume():
    layer = TriOrientedMambaLayer(8, d_state=4, inter_slice="chunks", num_slices=7)
    with pytest.raises(ValueError, match="num_slices=7"):
        layer(torch.randn(1, 8, 2, 2, 2))


# --- MONAI bundle configs build every network ------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("vmunet_isic.json", 27_427_561), ("vmunet_synapse.json", 27_427_761), ("segmamba_brats.json", 67_416_196)])
def test_bundle_config_builds_published_networks(name, expected):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(CONFIGS, name))
    with torch.device("meta"):
        net = parser.get_parsed_content("network_def")
    assert n_params(net) == expected


@pytest.mark.parametrize("name", ["vssmunet3d.json", "vssmunet2d.json", "vmunet2d_small.json", "segmamba_small.json"])
def test_bundle_config_builds_and_runs_small_networks(name):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([os.path.join(CONFIGS, "template_base.json"), os.path.join(CONFIGS, name)])
    net = parser.get_parsed_content("network_def").eval()
    dims = parser.get_parsed_content("spatial_dims")
    x = torch.rand(1, 1, *([32] * dims))
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, *x.shape[2:])


# --- forward conventions -----------------------------------------------------------------------------------------

def tiny_vssmunet(dims=3, **kw):
    return VSSMUNet(dims, 1, 3, feature_size=8, depths=(1, 1), d_state=4, norm_name="batch", **kw)


def test_outputs_are_logits_and_vmunet_sigmoid_is_optional():
    x = torch.randn(1, 1, 32, 32)
    net = VMUNet(3, 1, depths=(1, 1), depths_decoder=(1, 1), feature_size=8, d_state=4).eval()
    with torch.no_grad():
        logits = net(x)
        net.sigmoid_single_class = True
        assert torch.allclose(net(x), torch.sigmoid(logits))
    assert logits.min() < 0  # no activation inside


def test_deep_supervision_lists_in_training_only():
    net = VSSMUNet(2, 1, 3, feature_size=8, depths=(1, 1, 1), d_state=4, deep_supervision=True,
                   num_deep_supervision=2, norm_name="batch")
    out = net(torch.randn(2, 1, 32, 32))
    assert [o.shape[-1] for o in out] == [32, 16, 8]
    net.eval()
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("make,shape,match", [
    (lambda: tiny_vssmunet(3), (1, 1, 16, 16), "spatial_dims=3"),
    (lambda: tiny_vssmunet(3), (1, 2, 16, 16, 16), "expects 1 input channels, got 2"),
    (lambda: tiny_vssmunet(3), (1, 1, 16, 16, 14), "multiples of 4"),
    (lambda: tiny_vssmunet(2), (1, 1, 2, 2), "too small"),
    (lambda: VMUNet(3, 1, depths=(1, 1), depths_decoder=(1, 1), feature_size=8), (1, 3, 36, 36), "multiples of 8"),
    (lambda: VMUNet(3, 1, depths=(1, 1), depths_decoder=(1, 1), feature_size=8), (1, 2, 32, 32), "3 or 1"),
    (lambda: SegMamba(1, 2, feature_size=8, hidden_size=16, depths=(1, 1, 1, 1)), (1, 1, 16, 16), "rank 5"),
    (lambda: SegMamba(1, 2, feature_size=8, hidden_size=16, depths=(1, 1, 1, 1)), (1, 1, 8, 8, 8), "too small"),
])
def test_bad_input_is_named(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(torch.randn(*shape))


def test_bad_construction_is_named():
    with pytest.raises(ValueError, match="spatial_dims 2 or 3"):
        VSSMUNet(4)
    with pytest.raises(ValueError, match="2-D network"):
        VMUNet(spatial_dims=3)
    with pytest.raises(ValueError, match="3-D network"):
        SegMamba(spatial_dims=2)
    with pytest.raises(ValueError, match="official alias"):
        SegMamba(in_channels=2, in_chans=3)


def test_labels_beyond_out_channels_are_named():
    from vssm.medical.checks import check_labels

    with pytest.raises(ValueError, match="out_channels=3"):
        check_labels(torch.tensor([0, 1, 3]), 3)


# --- compile, bf16, activation checkpointing -------------------------------------------------------------------

def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    net = tiny_vssmunet(3)
    x = torch.randn(2, 1, 8, 8, 8)
    net(x).square().mean().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.use_checkpoint = True
    net(x).square().mean().backward()
    for a, b in zip(want, (p.grad for p in net.parameters())):
        assert torch.allclose(a, b, atol=1e-5)


def test_segmamba_checkpointing_runs():
    net = SegMamba(1, 2, feature_size=8, hidden_size=16, depths=(1, 1, 1, 1), d_state=4, norm_name="batch",
                   use_checkpoint=True)
    net(torch.randn(2, 1, 16, 16, 16)).mean().backward()
    assert net.vit.stages[0][0].mixer.in_proj.weight.grad is not None


def test_bf16_autocast_trains_without_nan():
    torch.manual_seed(0)
    net = tiny_vssmunet(3)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x = torch.rand(2, 1, 8, 8, 8)
    y = (x > 0.5).long().squeeze(1)
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        opt.step()


def test_torch_compile_captures_the_forward():
    net = VSSMUNet(2, 1, 3, feature_size=8, depths=(1, 1), d_state=4, norm_name="batch").eval()
    x = torch.randn(1, 1, 16, 16)
    compiled = torch.compile(net, backend="aot_eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), net(x), atol=1e-5)
