"""VMamba: sizes, official checkpoints, the cross-route semantics, layouts, odd inputs, features, training.

Behaviour runs on the small ``test_vmamba`` / ``test_vmamba_v0`` configurations and small inputs; full-size
models are built on the meta device (parameter counts, checkpoint mapping). timm's own model tests run in
tests/timm_contract/.
"""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401
from vssm.kernels import selective_scan
from vssm.layers import SS2D, RoutedSSM
from vssm.models.vmamba import VMamba, checkpoint_filter_fn

from vmamba_official_keys import OFFICIAL_CONFIGS, official_shapes_for

# counted from the official module trees (MzeroMiko/VMamba classification/models/vmamba.py) at 1000 classes
OFFICIAL_PARAMS = {
    "vmamba_tiny": 30_249_064, "vmamba_small": 50_147_752, "vmamba_base": 88_557_800,
    "vmamba_tiny_v0": 22_893_448, "vmamba_small_v0": 44_417_416, "vmamba_base_v0": 76_254_056,
}
SMALL = ("test_vmamba", "test_vmamba_v0")


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_registered_and_exact_param_count(name):
    assert name in timm.list_models("vmamba*")
    model = timm.create_model(name, device="meta")
    assert _n_params(model) == OFFICIAL_PARAMS[name]
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["classifier"] == "head.fc"
    assert cfg["first_conv"] + ".weight" in model.state_dict()


def _official_state(name, old_names=False, fill=None):
    shapes = official_shapes_for(name, old_names=old_names)
    g = torch.Generator().manual_seed(0)
    return {k: (torch.randn(s, generator=g) if fill is None else torch.full(s, fill)) for k, s in shapes.items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL_CONFIGS))
def test_checkpoint_filter_covers_every_official_key(name):
    """Every official key lands on a parameter of the same size and every parameter is covered."""
    model = timm.create_model(name, device="meta")
    shapes = official_shapes_for(name)
    state = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    mapped = checkpoint_filter_fn({"model": state}, model)
    ours = model.state_dict()
    assert set(mapped) == set(ours)
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    assert sum(v.numel() for v in mapped.values()) == sum(math.prod(s) for s in shapes.values())


def test_checkpoint_filter_values_and_old_v0_names():
    model = timm.create_model("test_vmamba_v0")
    new = checkpoint_filter_fn(_official_state("test_vmamba_v0"), model)
    old = checkpoint_filter_fn(_official_state("test_vmamba_v0", old_names=True), model)
    assert all(torch.equal(new[k], old[k]) for k in new)
    official = _official_state("test_vmamba_v0")
    # A_logs (K*d, N) -> (K, d, N): route k holds rows k*d .. (k+1)*d - 1; Ds (K*d,) -> (K, d)
    a_log = new["stages.0.blocks.0.mixer.ssm.A_log"]
    assert a_log.shape == (4, 48, 4)
    assert torch.equal(a_log[1], official["layers.0.blocks.0.op.A_logs"][48:96])
    assert torch.equal(new["stages.2.blocks.0.mixer.ssm.D"].flatten(), official["layers.2.blocks.0.op.Ds"])
    # the reference's downsample after stage i is ours before stage i + 1
    assert torch.equal(new["stages.1.downsample.reduction.weight"], official["layers.0.downsample.reduction.weight"])
    model.load_state_dict(new, strict=True)


def test_checkpoint_filter_lists_unknown_and_missing_keys():
    model = timm.create_model("test_vmamba")
    state = _official_state("test_vmamba")
    state["layers.0.blocks.0.op.x_proj_bias"] = torch.zeros(4, 5)
    del state["layers.3.blocks.0.mlp.fc2.weight"]
    with pytest.raises(ValueError, match=r"1 unknown keys \['layers\.0\.blocks\.0\.op\.x_proj_bias'\].*"
                                         r"stages\.3\.blocks\.0\.mlp\.fc2\.weight"):
        checkpoint_filter_fn(state, model)


def test_pretrained_file_and_convert_tool(tmp_path):
    """timm's pretrained loading (file overlay) and tools/convert_checkpoint.py both go through the filter."""
    import importlib.util
    import pathlib
    state = _official_state("test_vmamba")
    src = tmp_path / "official.pth"
    torch.save({"model": state, "epoch": 3}, src)
    model = timm.create_model("test_vmamba", pretrained=True, pretrained_cfg_overlay=dict(file=str(src)))
    expected = checkpoint_filter_fn(state, model)
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
    tool = pathlib.Path(__file__).parents[2] / "tools" / "convert_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoint", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dst = tmp_path / "ours.pth"
    mod.main(["--model", "test_vmamba", str(src), str(dst)])
    fresh = timm.create_model("test_vmamba")
    fresh.load_state_dict(torch.load(dst), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model.eval()(x))


def _cross_scan_by_hand(ssm: RoutedSSM, x: torch.Tensor) -> torch.Tensor:
    """VMamba's SS2D core written out as the reference does it, on (b, d, H, W): four sequences (row-major,
    column-major, both reversed), one single-route scan each with that route's parameters, merged back."""
    b, d, H, W = x.shape
    seqs = [x.flatten(2), x.transpose(2, 3).flatten(2)]
    seqs += [s.flip(-1) for s in seqs]
    R, N = ssm.dt_rank, ssm.d_state
    y = torch.zeros(b, d, H * W, dtype=x.dtype)
    for k, u in enumerate(seqs):
        x_dbl = torch.einsum("bdl,cd->bcl", u, ssm.x_proj_weight[k])
        dt, B, C = x_dbl.split([R, N, N], dim=1)
        delta = torch.einsum("brl,dr->bdl", dt, ssm.dt_proj_weight[k])
        out = selective_scan(u, delta, -torch.exp(ssm.A_log[k]), B, C, ssm.D[k], delta_bias=ssm.dt_proj_bias[k],
                             delta_softplus=True, backend="reference")
        if k >= 2:
            out = out.flip(-1)
        if k % 2 == 1:  # back from column-major order
            out = out.reshape(b, d, W, H).transpose(2, 3).reshape(b, d, H * W)
        y = y + out
    return y.reshape(b, d, H, W)


@pytest.mark.parametrize("channels_last", [True, False])
def test_routed_ssm_is_the_official_cross_scan(channels_last):
    torch.manual_seed(0)
    ssm = RoutedSSM(8, d_state=3, dt_rank=2, channels_last=channels_last).double()
    with torch.no_grad():
        ssm.A_log.add_(0.3 * torch.randn_like(ssm.A_log))
        ssm.D.add_(torch.randn_like(ssm.D))
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)  # H != W: a transposed route would not fit
    expected = _cross_scan_by_hand(ssm, x)
    got = ssm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if channels_last else ssm(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SMALL)
def test_layouts_give_the_same_model(name):
    torch.manual_seed(0)
    a = timm.create_model(name, channels_last=True).eval()
    b = timm.create_model(name, channels_last=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)
        fa, fb = a.forward_features(x), b.forward_features(x)
    assert a.output_fmt == "NHWC" and fa.shape == (2, 2, 2, 64)
    assert b.output_fmt == "NCHW" and fb.shape == (2, 64, 2, 2)
    torch.testing.assert_close(fa.permute(0, 3, 1, 2), fb, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, expected", [("test_vmamba", [(17, 23), (9, 12), (5, 6), (3, 3)]),
                                            ("test_vmamba_v0", [(16, 22), (8, 11), (4, 6), (2, 3)])])
def test_odd_sizes_and_batch_one(name, expected):
    """65 x 89 (both odd): the conv stem / 3x3 downsample round up, patch embedding floors and patch merging
    pads, as the reference does."""
    model = timm.create_model(name, features_only=True).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 65, 89))
    assert [tuple(f.shape[-2:]) for f in feats] == expected
    assert all(torch.isfinite(f).all() for f in feats)


def test_bad_inputs_fail_clearly():
    model = timm.create_model("test_vmamba_v0").eval()
    with pytest.raises(RuntimeError, match="channels"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(RuntimeError, match="[Kk]ernel size"):
        model(torch.randn(1, 3, 3, 3))  # smaller than one 4x4 patch
    with pytest.raises(TypeError):
        timm.create_model("test_vmamba", not_an_option=1)
    with pytest.raises(ValueError, match="out_norm"):
        SS2D(16, out_norm="softmax")
    with pytest.raises(ValueError, match="downsample"):
        VMamba(depths=(1, 1), dims=8, downsample="v3")


def test_features_intermediates_and_smp_style_encoder():
    """What segmentation_models_pytorch's timm encoder does: features_only with out_indices, channels and
    reductions from feature_info, NCHW maps; plus forward_intermediates in both formats."""
    enc = timm.create_model("test_vmamba", features_only=True, in_chans=1, out_indices=(0, 1, 2, 3))
    assert enc.feature_info.channels() == [24, 32, 48, 64]
    assert enc.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(2, 1, 64, 96)
    feats = enc(x)
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // r, 96 // r) for c, r in
                                               zip(enc.feature_info.channels(), enc.feature_info.reduction())]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in enc.parameters())
    two = timm.create_model("test_vmamba", features_only=True, out_indices=(1, 3))
    assert two.feature_info.channels() == [32, 64] and len(two(torch.randn(1, 3, 64, 64))) == 2

    model = timm.create_model("test_vmamba").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, output_fmt="NHWC")
        inter_cf = model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)
        torch.testing.assert_close(final, model.forward_features(x))
        torch.testing.assert_close(inter_cf[0].permute(0, 2, 3, 1), final)
    assert [t.shape[-1] for t in inter] == [24, 32, 48, 64]


def test_head_options_and_optimizer_groups():
    model = timm.create_model("test_vmamba", num_classes=0, global_pool="")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1, 1, 64)
    model.reset_classifier(7, "avg")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    assert model.forward_head(model.forward_features(torch.randn(1, 3, 32, 32)), pre_logits=True).shape == (1, 64)
    names = dict(model.named_parameters())
    nwd = model.no_weight_decay()
    assert nwd and nwd <= set(names) and all(n.endswith((".A_log", ".D")) for n in nwd)
    assert len(nwd) == 2 * sum(1 for m in model.modules() if isinstance(m, RoutedSSM))
    from timm.optim import create_optimizer_v2
    groups = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05).param_groups
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert all(id(names[n]) in no_decay for n in nwd)


def test_grad_checkpointing_same_output_and_grads():
    torch.manual_seed(0)
    model = timm.create_model("test_vmamba", num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)


def test_a_few_training_steps_reduce_the_loss():
    """Four classes: which quadrant of a noisy image is bright."""
    torch.manual_seed(0)
    n = 32
    y = torch.arange(n) % 4
    x = 0.3 * torch.randn(n, 3, 32, 32)
    for i, c in enumerate(y.tolist()):
        r, s = divmod(c, 2)
        x[i, :, 16 * r:16 * r + 16, 16 * s:16 * s + 16] += 1.0
    model = timm.create_model("test_vmamba", num_classes=4, drop_path_rate=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_bf16_and_double():
    model = timm.create_model("test_vmamba_v0").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model.double()(x.double())
        assert ref.dtype == torch.float64
        out = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=0.1, atol=0.1)


def test_torch_compile_tiny_config():
    """Dynamo captures the whole model, scan included, as one graph (``fullgraph=True``) and gives the same
    output and gradients. The ``eager`` backend keeps CI fast (graph capture is what can break; the
    reference scan unrolls into a long graph that Inductor's CPU codegen takes minutes on); an Inductor run
    is recorded in notes/vmamba.md."""
    torch.manual_seed(0)
    model = timm.create_model("test_vmamba", num_classes=5, depths=(1, 1, 1, 1))
    x = torch.randn(2, 3, 16, 24)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)
