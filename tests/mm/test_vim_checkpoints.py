"""Vim checkpoints in the segmentation backbone: a classification checkpoint with a (middle) class token loads
into the class-token-free pyramid backbone, and official mmseg-0.x UperNet checkpoints convert."""

import logging

import pytest
import timm
import torch
import torch.nn.functional as F

from vssm.models.vim_weights import OFFICIAL_ROUTE_KEYS, checkpoint_filter_fn

SMALL_VIM = dict(depth=4, embed_dim=32, d_state=4)


def official_names(ours: dict) -> dict:
    """Our Vim state dict (``blocks.*``, stacked routes, ``norm``) in the official names (the inverse of the
    filter): ``layers.{i}.mixer.conv1d / conv1d_b ...`` one tensor per direction, ``norm_f``."""
    out = {}
    for k, v in ours.items():
        parts = k.split(".")
        if parts[0] == "blocks" and parts[2] == "mixer" and parts[3] in OFFICIAL_ROUTE_KEYS:
            fwd, bwd = OFFICIAL_ROUTE_KEYS[parts[3]]
            for name, t in zip((fwd, bwd), v.unbind(0)):
                out[f"layers.{parts[1]}.mixer.{name}"] = t.unsqueeze(1) if parts[3] == "conv_weight" else t
        elif parts[0] == "blocks":
            out["layers." + k[len("blocks."):]] = v
        elif k.startswith("norm."):
            out["norm_f." + k[len("norm."):]] = v
        else:
            out[k] = v
    return out


def randomised(model: torch.nn.Module) -> dict:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()}


def build_seg_backbone(img_size, **overrides):
    from mmseg.registry import MODELS

    import vssm.mm  # noqa: F401

    cfg = dict(type="Vim", arch="tiny_patch16_224", img_size=img_size, drop_path_rate=0.0,
               model_kwargs=dict(SMALL_VIM))
    return MODELS.build(dict(cfg, **overrides))


@pytest.mark.parametrize("layout", ["ours", "official"])
def test_class_token_checkpoint_loads_into_the_token_free_segmentation_backbone(tmp_path, layout, caplog):
    # a 224 classifier: 14 x 14 patches + the class token in the middle (row 98 of 197), as Vim-tiny-midclstok
    cls_model = timm.create_model("vim_tiny_patch16_224", num_classes=10, **SMALL_VIM)
    assert cls_model.pos_embed.shape == (1, 197, 32) and cls_model.class_token_index(196) == 98
    sd = randomised(cls_model)
    path = tmp_path / "vim_cls.pth"
    torch.save({"model": official_names(sd)} if layout == "official" else sd, path)

    backbone = build_seg_backbone(512, init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    inner = backbone.inner
    assert inner.cls_token is None and inner.pos_embed.shape == (1, 1024, 32)   # 32 x 32, no class token
    rescale_before = {k: v.clone() for k, v in backbone.body.rescale.state_dict().items()}
    caplog.set_level(logging.INFO, logger="vssm.models")
    backbone.init_weights()

    # the expected table: the class token's row (98) taken out of the middle, the 14 x 14 patch rows upsampled
    # to 32 x 32 with torch's bicubic interpolation (antialiased kernel, as the family's on-the-fly resampling;
    # the official seg code's interpolate_pos_embed uses antialias=False, a different cubic kernel)
    def upsample(rows):
        grid = rows.reshape(1, 14, 14, 32).permute(0, 3, 1, 2)
        out = F.interpolate(grid, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
        return out.permute(0, 2, 3, 1).reshape(1, 1024, 32)

    table = sd["pos_embed"]
    expected = upsample(torch.cat([table[:, :98], table[:, 99:]], dim=1))
    torch.testing.assert_close(inner.pos_embed.detach(), expected, atol=1e-6, rtol=1e-6)
    # the class token's row is really gone from the middle (dropping row 0 instead would shift rows 0-97)
    assert not torch.allclose(inner.pos_embed.detach(), upsample(table[:, 1:]), atol=1e-3)

    # every other weight is the checkpoint's, bit for bit
    loaded = inner.state_dict()
    assert set(loaded) == set(sd) - {"cls_token", "head.weight", "head.bias", "norm.weight"}
    for k, v in loaded.items():
        if k != "pos_embed":
            assert torch.equal(v, sd[k]), k
    # the pyramid's rescalers are not in a classification checkpoint and keep their initial values
    for k, v in backbone.body.rescale.state_dict().items():
        assert torch.equal(v, rescale_before[k]), k
    log = caplog.text
    assert "dropped row 98 of 197 (the class token's" in log
    assert "cls_token (1, 1, 32): dropped" in log
    assert "resampled the 14x14 patch rows to the model's 32x32 grid" in log
    feats = backbone(torch.randn(1, 3, 64, 64))  # and it runs (position table resampled on the fly)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_class_token_and_position_table_that_do_not_fit_fail_loudly(tmp_path):
    cls_model = timm.create_model("vim_tiny_patch16_224", num_classes=0, **SMALL_VIM)
    seg_model = timm.create_model("vim_tiny_patch16_224", num_classes=0, img_size=256, class_token=False,
                                  global_pool="avg", **SMALL_VIM)
    sd = randomised(cls_model)
    no_token = {k: v for k, v in sd.items() if k != "cls_token"}  # 197-row table, but no cls_token
    with pytest.raises(ValueError, match="197 rows.*plus a class token.*has no cls_token"):
        checkpoint_filter_fn(no_token, seg_model)
    token_square = dict(sd, pos_embed=sd["pos_embed"][:, :196])  # cls_token, but a 196-row table
    with pytest.raises(ValueError, match="196 rows.*without a class token.*has cls_token"):
        checkpoint_filter_fn(token_square, seg_model)
    with pytest.raises(ValueError, match="198 rows, not a square grid"):
        checkpoint_filter_fn(dict(sd, pos_embed=torch.zeros(1, 198, 32)), seg_model)
    with pytest.raises(ValueError, match="shape"):
        checkpoint_filter_fn(dict(sd, pos_embed=torch.zeros(1, 197, 16)), seg_model)
    # a token-free checkpoint into a model that needs a class token
    seg_sd = checkpoint_filter_fn(sd, seg_model)
    assert "cls_token" not in seg_sd and seg_sd["pos_embed"].shape == (1, 256, 32)
    with pytest.raises(ValueError, match="model has a class token but the checkpoint has none"):
        checkpoint_filter_fn(seg_sd, cls_model)
    # through the backbone: the error names the backbone and the checkpoint
    path = tmp_path / "bad.pth"
    torch.save(no_token, path)
    backbone = build_seg_backbone(256, init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"bad\.pth does not fit Vim\(arch='tiny_patch16_224'.*has no cls_token"):
        backbone.init_weights()


VIM_UPERNET = "configs/mmseg/vim/upernet_vim-t_4xb8-60k_ade20k-512x512.py"


def official_segmentor_state(ours: dict) -> dict:
    """Our Vim UperNet state dict in the names of the official mmseg-0.x checkpoint (hustvl/Vim
    ``seg/backbone/vim.py``, patch 16): ``backbone.layers.*`` / ``norm_f`` (official Vim names), the 4-scale
    adapter ``fpn1 = Sequential(deconv, SyncBN, GELU, deconv)``, ``fpn2 = Sequential(deconv)``, ``fpn3`` identity,
    ``fpn4`` max-pool; heads unchanged."""
    body = {k[len("backbone.body.model."):]: v for k, v in ours.items() if k.startswith("backbone.body.model.")}
    g = torch.Generator().manual_seed(1)
    body["norm.weight"] = torch.randn(body["patch_embed.proj.bias"].shape, generator=g)  # kept, unused, by theirs
    out = {f"backbone.{k}": v for k, v in official_names(body).items()}
    for k, v in ours.items():
        if k.startswith("backbone.body.rescale.0."):      # Sequential in both
            out["backbone.fpn1." + k[len("backbone.body.rescale.0."):]] = v
        elif k.startswith("backbone.body.rescale.1."):    # ours: the bare deconv; theirs: Sequential(deconv)
            out["backbone.fpn2.0." + k[len("backbone.body.rescale.1."):]] = v
        elif not k.startswith("backbone."):
            out[k] = v
    return out


def _our_vim_upernet():
    from vssm.mm.convert import build_model_from_config

    model = build_model_from_config(VIM_UPERNET)
    torch.manual_seed(0)
    for p in model.backbone.body.rescale.parameters():  # not at their default init, so a swap would show
        p.data.normal_()
    return model


def test_official_vim_upernet_checkpoint_converts_and_loads_strictly(tmp_path):
    from mm_helpers import run_tool

    ours = _our_vim_upernet().state_dict()
    official = official_segmentor_state(ours)
    assert {k.split(".")[1] for k in official if k.startswith("backbone.fpn")} == {"fpn1", "fpn2"}
    assert "backbone.norm_f.weight" in official and "backbone.layers.23.mixer.conv1d_b.weight" in official
    assert official["backbone.pos_embed"].shape == (1, 1024, 192)
    src = tmp_path / "official.pth"
    torch.save({"state_dict": official, "meta": {}}, src)

    # the converter with the per-key report
    dst = tmp_path / "ours.pth"
    out = run_tool("tools/convert.py", "mm", "--config", VIM_UPERNET, str(src), str(dst)).stdout
    for official_key, our_key in [("backbone.fpn1.0.weight", "backbone.body.rescale.0.0.weight"),
                                  ("backbone.fpn1.1.running_var", "backbone.body.rescale.0.1.running_var"),
                                  ("backbone.fpn1.3.bias", "backbone.body.rescale.0.3.bias"),
                                  ("backbone.fpn2.0.weight", "backbone.body.rescale.1.weight"),
                                  ("backbone.layers.7.mixer.A_log + backbone.layers.7.mixer.A_b_log",
                                   "backbone.body.model.blocks.7.mixer.A_log"),
                                  ("decode_head.conv_seg.weight", "decode_head.conv_seg.weight")]:
        assert f"mapped   {official_key} -> {our_key} " in out, official_key
    assert "dropped  backbone.norm_f.weight  (not in the backbone: its outputs are taken before it" in out
    assert "0 target keys missing, 0 unexplained" in out and "loads strictly" in out
    converted = torch.load(dst, weights_only=True)["state_dict"]
    assert converted.keys() == ours.keys()
    for k, v in ours.items():
        assert torch.equal(converted[k], v), k

    # the summary converter: same result, every adapter rename and drop printed
    dst2 = tmp_path / "ours2.pth"
    out = run_tool("tools/convert_mm_checkpoint.py", str(src), str(dst2), "--config", VIM_UPERNET).stdout
    assert "mapped   backbone.fpn2.0.bias -> backbone.body.rescale.1.bias" in out
    assert "dropped  norm.weight (as the family filter names it)  (not in the backbone" in out
    assert "4 tensors dropped" not in out and "1 tensors dropped" in out and "loads strictly" in out
    converted2 = torch.load(dst2, weights_only=True)["state_dict"]
    assert all(torch.equal(converted2[k], v) for k, v in ours.items()) and converted2.keys() == ours.keys()


def test_vim_segmentor_keys_that_have_no_place_fail_the_conversion(tmp_path):
    from vssm.mm.convert import convert_checkpoint, convert_state_dict

    model = _our_vim_upernet()
    official = official_segmentor_state(model.state_dict())
    convert_state_dict(dict(official), model)  # the complete one converts
    bad_adapter = dict(official, **{"backbone.fpn2.1.weight": torch.zeros(192)})  # fpn2 is one deconv here
    with pytest.raises(ValueError, match=r"have no place in our pyramid.*fpn2\.1\.weight"):
        convert_state_dict(bad_adapter, model)
    with pytest.raises(ValueError, match="rope.freqs_cos"):  # the official small model's rope buffers
        convert_state_dict(dict(official, **{"backbone.rope.freqs_cos": torch.zeros(1024, 192)}), model)
    # a checkpoint without the adapter's norm: the converter's strict load names the missing keys
    missing = {k: v for k, v in official.items() if not k.startswith("backbone.fpn1.1.")}
    src = tmp_path / "incomplete.pth"
    torch.save({"state_dict": missing}, src)
    with pytest.raises(ValueError, match=r"does not fit the model.*missing \['backbone.body.rescale.0.1.weight'"):
        convert_checkpoint(str(src), str(tmp_path / "out.pth"), VIM_UPERNET)
    assert not (tmp_path / "out.pth").exists()
