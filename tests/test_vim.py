"""Vision Mamba: official sizes, checkpoint mapping, class token placement, position-table resampling, timm's
model API, dense features, and training. Behaviour tests use reduced widths/depths of the registered models."""

import math

import pytest
import torch
import torch.nn.functional as F
import timm

import vssm  # noqa: F401  (registers the models)
from vssm.models.vim import VisionMamba, add_rms_norm, checkpoint_filter_fn, resample_pos_embed_with_token
from vssm.models.vim_weights import class_token_index

OFFICIAL_PARAMS = {  # counted from the official module trees at 1000 classes
    "vim_tiny_patch16_224": 7_148_008,
    "vim_tiny_patch16_stride8_224": 7_250_344,
    "vim_small_patch16_224": 25_796_584,
    "vim_small_patch16_stride8_224": 26_001_256,
    "vim_base_patch16_224": 97_598_440,
}
SMALL = dict(embed_dim=32, depth=4, d_state=4)


def official_state_shapes(dim, depth, num_patches, num_classes=1000, d_state=16, expand=2, d_conv=4, patch=16):
    """Key names and shapes of the official Vim state dict (vim/models_mamba.py + mamba_simple.py "v2")."""
    d_inner, rank = expand * dim, math.ceil(dim / 16)
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, num_patches + 1, dim),
              "patch_embed.proj.weight": (dim, 3, patch, patch), "patch_embed.proj.bias": (dim,),
              "head.weight": (num_classes, dim), "head.bias": (num_classes,), "norm_f.weight": (dim,)}
    for i in range(depth):
        p = f"layers.{i}."
        shapes[p + "norm.weight"] = (dim,)
        shapes[p + "mixer.in_proj.weight"] = (2 * d_inner, dim)
        shapes[p + "mixer.out_proj.weight"] = (dim, d_inner)
        for s in ("", "_b"):
            shapes[p + f"mixer.conv1d{s}.weight"] = (d_inner, 1, d_conv)
            shapes[p + f"mixer.conv1d{s}.bias"] = (d_inner,)
            shapes[p + f"mixer.x_proj{s}.weight"] = (rank + 2 * d_state, d_inner)
            shapes[p + f"mixer.dt_proj{s}.weight"] = (d_inner, rank)
            shapes[p + f"mixer.dt_proj{s}.bias"] = (d_inner,)
            shapes[p + f"mixer.D{s}"] = (d_inner,)
        shapes[p + "mixer.A_log"] = (d_inner, d_state)
        shapes[p + "mixer.A_b_log"] = (d_inner, d_state)
    return shapes


def small_vim(name="vim_tiny_patch16_224", **kwargs):
    return timm.create_model(name, **dict(SMALL, **kwargs))


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_registered_models_have_official_parameter_counts(name):
    model = timm.create_model(name, device="meta")
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]
    assert all(p.device.type == "meta" for p in model.parameters())


def test_official_state_dict_maps_completely():
    model = timm.create_model("vim_tiny_patch16_224", depth=3, img_size=64)
    official = {k: torch.randn(s) for k, s in official_state_shapes(192, 3, 16).items()}
    mapped = checkpoint_filter_fn({"model": official}, model)
    assert model.load_state_dict(mapped, strict=True)
    mixer = model.blocks[2].mixer
    torch.testing.assert_close(mixer.conv_weight[1], official["layers.2.mixer.conv1d_b.weight"][:, 0])
    torch.testing.assert_close(mixer.A_log[1], official["layers.2.mixer.A_b_log"])
    torch.testing.assert_close(mixer.dt_proj_bias[0], official["layers.2.mixer.dt_proj.bias"])
    torch.testing.assert_close(model.norm.weight, official["norm_f.weight"])
    # our own layout passes through unchanged
    assert model.load_state_dict(checkpoint_filter_fn(model.state_dict(), model), strict=True)


def test_pretrained_loading_goes_through_the_filter(tmp_path):
    official = {k: torch.randn(s) for k, s in official_state_shapes(32, 4, 16, d_state=4).items()}
    path = tmp_path / "vim_official.pth"
    torch.save({"model": official}, path)
    model = timm.create_model("test_vim", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(model.blocks[3].mixer.D[1], official["layers.3.mixer.D_b"])
    torch.testing.assert_close(model.pos_embed, official["pos_embed"])


def test_checkpoint_filter_refuses_to_drop_keys():
    model = timm.create_model("vim_tiny_patch16_224", depth=1, img_size=32)
    official = {k: torch.randn(s) for k, s in official_state_shapes(192, 1, 4).items()}
    with pytest.raises(ValueError, match="rope.freqs_cos"):
        checkpoint_filter_fn(dict(official, **{"rope.freqs_cos": torch.zeros(1)}), model)
    with pytest.raises(ValueError, match="gamma"):
        checkpoint_filter_fn(dict(official, **{"layers.0.mixer.gamma": torch.zeros(1)}), model)
    del official["layers.0.mixer.x_proj_b.weight"]
    with pytest.raises(ValueError, match="x_proj_b"):
        checkpoint_filter_fn(official, model)


@pytest.mark.parametrize("grid", [(1, 1), (1, 2), (1, 3), (3, 3), (2, 3), (3, 5)])
def test_class_token_sits_after_half_the_patches(grid):
    H, W = grid
    model = VisionMamba(img_size=(4 * H, 4 * W), patch_size=4, patch_stride=4, **SMALL)
    with torch.no_grad():
        model.pos_embed.zero_()
    tokens, g = model.patch_embed(torch.randn(1, 3, 4 * H, 4 * W))
    seq = model._pos_embed(tokens, g)
    i = (H * W) // 2
    assert class_token_index(H * W) == i
    torch.testing.assert_close(seq[:, i], model.cls_token[:, 0])
    torch.testing.assert_close(torch.cat([seq[:, :i], seq[:, i + 1:]], 1), tokens)
    patches, cls = model._remove_class_token(seq)
    torch.testing.assert_close(cls[:, 0], model.cls_token[:, 0])
    torch.testing.assert_close(patches, tokens)


def test_pos_embed_resampling_moves_the_middle_token():
    old, new = (3, 3), (4, 5)
    grid = torch.linspace(0, 1, 9 * 6).reshape(1, 9, 6)
    cls_row = torch.full((1, 1, 6), 7.0)
    table = torch.cat([grid[:, :4], cls_row, grid[:, 4:]], 1)       # token after 9 // 2 = 4 patches
    out = resample_pos_embed_with_token(table, new, old)
    assert out.shape == (1, 21, 6)
    j = 20 // 2
    torch.testing.assert_close(out[:, j:j + 1], cls_row)
    expected_grid = F.interpolate(grid.reshape(1, 3, 3, 6).permute(0, 3, 1, 2), size=new, mode="bicubic",
                                  antialias=True).permute(0, 2, 3, 1).reshape(1, 20, 6)
    torch.testing.assert_close(torch.cat([out[:, :j], out[:, j + 1:]], 1), expected_grid)
    assert torch.equal(resample_pos_embed_with_token(table, old, old), table)
    # the official fine-tuning code treats row 0 as the class token: its new middle row is a grid value
    rest = F.interpolate(table[:, 1:].reshape(1, 3, 3, 6).permute(0, 3, 1, 2), size=new, mode="bicubic")
    official_style = torch.cat([table[:, :1], rest.permute(0, 2, 3, 1).reshape(1, 20, 6)], 1)
    assert not torch.allclose(official_style[:, j], cls_row[:, 0])


def test_dynamic_size_uses_resampled_table_and_checkpoint_resamples():
    model = small_vim(img_size=32, patch_size=8, patch_stride=8).eval()
    x = torch.randn(1, 3, 40, 24)                                       # 5 x 3 grid vs 4 x 4 table
    feats = model.forward_features(x)
    assert feats.shape == (1, 16, 32)
    bigger = small_vim(img_size=48, patch_size=8, patch_stride=8)
    sd = checkpoint_filter_fn(model.state_dict(), bigger)
    bigger.load_state_dict(sd)
    torch.testing.assert_close(bigger.pos_embed[:, 36 // 2], model.pos_embed[:, 16 // 2])
    fixed = VisionMamba(img_size=32, patch_size=8, patch_stride=8, dynamic_img_size=False, **SMALL)
    with pytest.raises(ValueError, match="position table"):
        fixed(x)


def test_set_input_size_resamples_the_table_around_the_class_token():
    model = small_vim(img_size=32, patch_size=8, patch_stride=8).eval()
    x = torch.randn(1, 3, 48, 40)
    before = model(x)                                                   # resampled on the fly
    old_cls_row = model.pos_embed[:, 8].clone()
    model.requires_grad_(False)
    model.set_input_size(img_size=(48, 40))
    assert model.pos_embed.shape == (1, 31, 32) and not model.pos_embed.requires_grad
    torch.testing.assert_close(model.pos_embed[:, 30 // 2], old_cls_row)
    torch.testing.assert_close(model(x), before)                        # same table, now stored
    with pytest.raises(ValueError, match="patch size"):
        model.set_input_size(patch_size=4)


def test_add_rms_norm_keeps_fp32_residual_and_returns_input_dtype():
    h, res, w = torch.randn(2, 3, 8, dtype=torch.bfloat16), torch.randn(2, 3, 8), torch.rand(8)
    normed, new_res = add_rms_norm(h, res, w, 1e-5, residual_in_fp32=True)
    assert new_res.dtype == torch.float32 and normed.dtype == torch.bfloat16
    s = res + h.float()
    torch.testing.assert_close(new_res, s)
    torch.testing.assert_close(normed.float(), (s / s.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt() * w),
                               rtol=1e-2, atol=1e-2)


def test_init_quirks():
    model = small_vim()
    for blk in model.blocks:
        assert torch.all(blk.mixer.dt_proj_bias[1] == 0) and torch.all(blk.mixer.dt_proj_bias[0] != 0)
        bound = 1 / math.sqrt(blk.mixer.d_inner) / math.sqrt(len(model.blocks))
        assert blk.mixer.out_proj.weight.abs().max() <= bound
    assert torch.all(model.head.bias == 0) and torch.all(model.patch_embed.proj.bias == 0)
    assert [b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0 for b in model.blocks] == \
        pytest.approx([0.0, 0.0, 0.1 / 3, 0.2 / 3])
    assert model.drop_path.drop_prob == pytest.approx(0.1)


def test_timm_api_contract():
    model = small_vim(num_classes=42).eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(TypeError):
        small_vim(not_an_option=1)
    out = model(x)
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    feats = model.forward_features(x)
    assert feats.shape == (2, 17, model.num_features)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
    model.set_grad_checkpointing()
    torch.testing.assert_close(model(x), out)
    model.set_grad_checkpointing(False)
    cfg = model.pretrained_cfg
    sd = model.state_dict()
    assert cfg["first_conv"] + ".weight" in sd and cfg["classifier"] + ".weight" in sd
    assert len(model.group_matcher()) > 1
    assert model.no_weight_decay() <= set(dict(model.named_parameters()))
    assert {"pos_embed", "cls_token", "blocks.0.mixer.A_log", "blocks.0.mixer.D"} <= model.no_weight_decay()
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    model.reset_classifier(0, "avg")
    assert model(x).shape == (2, model.num_features)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(5, "max")
    bf16 = small_vim().to(torch.bfloat16).eval()
    assert bf16(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_backward_reaches_every_parameter():
    model = small_vim(num_classes=42).train()
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("take_from", ["stream", "mixer"])
def test_forward_intermediates(take_from):
    model = small_vim(img_size=64).eval()
    x = torch.randn(2, 3, 64, 48)
    final, inter = model.forward_intermediates(x, take_from=take_from)
    assert len(inter) == len(model.feature_info) == 4
    assert all(t.shape == (2, 32, 4, 3) for t in inter)
    torch.testing.assert_close(final, model.forward_features(x), rtol=1e-5, atol=1e-8)
    nlc = model.forward_intermediates(x, indices=[1], output_fmt="NLC", intermediates_only=True,
                                      take_from=take_from)
    torch.testing.assert_close(nlc[0], inter[1].flatten(2).transpose(1, 2))
    model.set_grad_checkpointing()
    final2, _ = model.forward_intermediates(x, take_from=take_from)
    torch.testing.assert_close(final2, final, rtol=1e-4, atol=1e-5)
    taken = model.prune_intermediate_layers([1])
    assert taken == [1] and len(model.blocks) == 2


@pytest.mark.parametrize("name,size,levels", [
    ("vim_tiny_patch16_224", 96, [(24, 24), (12, 12), (6, 6), (3, 3)]),
    ("vim_tiny_patch16_stride8_224", 96, [(22, 22), (11, 11), (5, 5), (2, 2)]),
])
def test_features_only_pyramid(name, size, levels):
    model = timm.create_model(name, features_only=True, **SMALL).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert model.feature_info.channels() == [32] * 4
    outs = model(torch.randn(1, 3, size, size))
    assert [tuple(o.shape[-2:]) for o in outs] == levels and all(o.shape[1] == 32 for o in outs)
    assert model.layer_indices == (0, 1, 2, 3)
    custom = timm.create_model(name, features_only=True, layer_indices=(3, 3, 3, 3), take_from="stream", **SMALL)
    assert custom.layer_indices == (3, 3, 3, 3) and custom.take_from == "stream"
    with pytest.raises(TypeError, match="features_only"):
        timm.create_model(name, layer_indices=(0, 1, 2, 3), **SMALL)
    two = timm.create_model(name, features_only=True, out_indices=(2, 3), **SMALL)
    assert two.feature_info.reduction() == [16, 32] and len(two(torch.randn(1, 3, size, size))) == 2


def test_features_only_taps_mixer_outputs_of_chosen_layers():
    model = small_vim(depth=8).eval()
    feats = timm.create_model("vim_tiny_patch16_224", features_only=True, **dict(SMALL, depth=8)).eval()
    feats.model.load_state_dict(model.state_dict(), strict=False)
    assert feats.layer_indices == (1, 3, 5, 7)
    x = torch.randn(1, 3, 64, 64)
    taps = model.forward_intermediates(x, indices=[5], take_from="mixer", intermediates_only=True)
    torch.testing.assert_close(feats(x)[2], taps[0])                    # stride-16 level is the identity


def test_bad_arguments():
    with pytest.raises(ValueError, match="global_pool"):
        VisionMamba(global_pool="max", **SMALL)
    with pytest.raises(ValueError, match="class_token_position"):
        VisionMamba(class_token_position="last", **SMALL)
    with pytest.raises(ValueError, match="smaller than"):
        small_vim()(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="patch strides"):
        timm.create_model("vim_tiny_patch16_224", features_only=True, patch_stride=4, **SMALL)


def test_variants_without_middle_token():
    first = small_vim(class_token_position="first", img_size=32).eval()
    assert first.class_token_index(16) == 0 and first(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    none = small_vim(class_token=False, global_pool="avg", img_size=32).eval()
    assert none.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 4, 32)


def test_training_steps_reduce_loss():
    torch.manual_seed(0)
    model = small_vim(num_classes=4, img_size=32, drop_path_rate=0.0)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
