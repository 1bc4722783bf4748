"""Our configs and the official VMamba configs build, with the official parameter counts."""

from pathlib import Path

import pytest
import torch

from mm_helpers import ROOT

# the backbone dict of the official VMamba-T detection / segmentation configs (type MM_VSSM); the official
# files inherit the Swin configs without _delete_, so Swin's keys are merged in as well
OFFICIAL_VMAMBA_T = dict(
    type="MM_VSSM", out_indices=(0, 1, 2, 3), pretrained="", dims=96, depths=(2, 2, 8, 2), ssm_d_state=1,
    ssm_dt_rank="auto", ssm_ratio=1.0, ssm_conv=3, ssm_conv_bias=False, forward_type="v05_noz", mlp_ratio=4.0,
    downsample_version="v3", patchembed_version="v2", drop_path_rate=0.2, norm_layer="ln2d")

# counted with the official code
MASK_RCNN_VMAMBA_T = 49_755_312
VMAMBA_T_BACKBONE = 29_481_408
UPERNET_VMAMBA_T = 61_902_572


def _build(cfg_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import vssm.mm  # noqa: F401

    cfg = Config.fromfile(str(cfg_path))
    init_default_scope(cfg.default_scope)
    registry = __import__(f"{cfg.default_scope}.registry", fromlist=["MODELS"]).MODELS
    return cfg, registry.build(cfg.model)


def _n(module):
    return sum(p.numel() for p in module.parameters())


def _official_config(tmp_path, base):
    path = tmp_path / "official.py"
    path.write_text(f"_base_ = ['{base}']\ncustom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)\n"
                    f"model = dict(backbone={OFFICIAL_VMAMBA_T!r})\n")
    return path


def _no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to fetch weights: {args}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_official_mask_rcnn_vmamba_t_config_runs_with_official_counts(tmp_path, monkeypatch, caplog):
    _no_downloads(monkeypatch)
    cfg, model = _build(_official_config(tmp_path, "mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py"))
    assert "embed_dims" in cfg.model.backbone and "init_cfg" in cfg.model.backbone  # Swin keys merged in
    assert _n(model) == MASK_RCNN_VMAMBA_T
    assert _n(model.backbone) == VMAMBA_T_BACKBONE
    model.init_weights()  # must not fetch Swin's weights
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == [96, 192, 384, 768]
    assert [96 // f.shape[-1] for f in feats] == [4, 8, 16, 32]


def test_official_upernet_vmamba_t_config_runs_with_official_count(tmp_path, monkeypatch):
    _no_downloads(monkeypatch)
    _, model = _build(_official_config(
        tmp_path, "mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py"))
    assert _n(model) == UPERNET_VMAMBA_T
    model.init_weights()


def test_mm_vssm_rejects_what_we_do_not_build():
    from mmdet.registry import MODELS

    import vssm.mm  # noqa: F401

    for bad, match in ((dict(forward_type="v052d_noz"), "forward_type='v052d_noz'"),
                       (dict(norm_layer="bn"), "norm_layer='bn'"),
                       (dict(gmlp=True), "gmlp=True"),
                       (dict(downsample_version="none"), "downsample_version='none'"),
                       (dict(window_sizes=7), "unknown arguments")):
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(OFFICIAL_VMAMBA_T, **bad))


# the backbone dict of the official EfficientVMamba detection config with dims 96, depths 2-2-4-2 (its FPN
# inputs, Swin-T's 96-768, match; the published tiny one does not); also merged into the Swin-T config
OFFICIAL_EFFICIENT_96 = dict(
    type="MM_EfficientVSSM", depths=(2, 2, 4, 2), dims=96, out_indices=(0, 1, 2, 3), pretrained="",
    ssm_d_state=16, ssm_dt_rank="auto", ssm_ratio=2.0, mlp_ratio=0.0, downsample_version="v1",
    patchembed_version="v1", window_size=2)


def test_official_efficient_vmamba_config_runs_on_our_efficient_vmamba(tmp_path, monkeypatch):
    from mmdet.registry import MODELS

    _no_downloads(monkeypatch)
    path = tmp_path / "official_efficient.py"
    path.write_text("_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']\n"
                    "custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)\n"
                    f"model = dict(backbone={OFFICIAL_EFFICIENT_96!r})\n")
    cfg, model = _build(path)
    assert "embed_dims" in cfg.model.backbone and cfg.model.backbone.window_size == 2  # Swin keys merged in
    ours = MODELS.build(dict(type="EfficientVMamba", arch="tiny", depths=(2, 2, 4, 2), dims=96,
                             drop_path_rate=0.1))
    assert {k: v.shape for k, v in model.backbone.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    model.init_weights()  # must not fetch Swin's weights
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == [96, 192, 384, 768]
    assert [96 // f.shape[-1] for f in feats] == [4, 8, 16, 32]


def test_mm_efficient_vssm_rejects_what_the_official_backbone_does_not_build():
    from mmdet.registry import MODELS

    import vssm.mm  # noqa: F401

    for bad, match in ((dict(ssm_d_state=1), "ssm_d_state=1"),
                       (dict(mlp_ratio=4.0), "mlp_ratio=4.0"),
                       (dict(downsample_version="v2"), "downsample_version='v2'"),
                       (dict(patchembed_version="v2"), "patchembed_version='v2'"),
                       (dict(norm_layer="bn"), "norm_layer='bn'"),
                       (dict(forward_type="v2"), "unknown arguments")):
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(OFFICIAL_EFFICIENT_96, **bad))


def test_our_vmamba_t_recipes_have_the_official_counts():
    _, det = _build(ROOT / "configs/mmdet/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py")
    assert _n(det) == MASK_RCNN_VMAMBA_T
    _, seg = _build(ROOT / "configs/mmseg/vmamba/upernet_vmamba-t_4xb4-160k_ade20k-512x512.py")
    assert _n(seg) == UPERNET_VMAMBA_T


RECIPES = sorted(p for p in (ROOT / "configs").glob("mm*/**/*.py") if "_base_" not in p.parts)


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(ROOT / "configs")) for p in RECIPES])
def test_every_config_parses_with_our_backbone(path):
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports["imports"] == ["vssm.mm"]
    assert cfg.model.backbone.type in {"VMamba", "MSVMamba", "EfficientVMamba", "Vim", "TimmBackbone"}
    if "smoke" not in path.parts:
        assert cfg.optim_wrapper.optimizer.type == "AdamW"
