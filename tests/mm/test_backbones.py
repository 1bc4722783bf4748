"""VMamba as an MMEngine backbone: outputs, options, checkpoints, and errors that name the problem."""

import pytest
import timm
import torch

SMALL = dict(type="VMamba", arch="tiny", dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0,
             model_kwargs=dict(d_state=1, ssm_ratio=1.0))


def build(**overrides):
    from mmdet.registry import MODELS

    import vssm.mm  # noqa: F401

    return MODELS.build(dict(SMALL, **overrides))


def test_registered_in_both_toolkits():
    import vssm.mm  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG

    for name in ("VMamba", "MM_VSSM", "EfficientVMamba", "MM_EfficientVSSM", "TimmBackbone"):
        assert DET.get(name) is not None and SEG.get(name) is not None


def test_outputs_are_nchw_pyramid_with_out_norms():
    b = build(out_indices=(0, 2, 3)).eval()
    feats = b(torch.randn(2, 3, 96, 128))
    assert [f.shape for f in feats] == [(2, 16, 24, 32), (2, 64, 6, 8), (2, 128, 3, 4)]
    assert b.channels == [16, 64, 128] and b.strides == [4, 16, 32]
    names = {k.split(".")[0] for k in b.state_dict() if k.startswith("outnorm")}
    assert names == {"outnorm0", "outnorm2", "outnorm3"}
    # the out-norm normalises over channels at every position
    f = b.body.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0], intermediates_only=True)[0]
    y = b.outnorm0(f)
    torch.testing.assert_close(y.mean(1), torch.zeros_like(y.mean(1)), atol=1e-5, rtol=0)


FAMILIES = [
    SMALL,
    dict(type="MSVMamba", arch="nano", dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0),
    dict(type="EfficientVMamba", arch="tiny", dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0),
    dict(type="MM_VSSM", dims=16, depths=(1, 1, 1, 1), ssm_d_state=1, ssm_ratio=1.0, forward_type="v05_noz",
         downsample_version="v3", patchembed_version="v2", norm_layer="ln2d"),
    dict(type="Vim", arch="tiny_patch16_224", img_size=64, model_kwargs=dict(depth=4, embed_dim=32)),
    dict(type="TimmBackbone", model_name="resnet18", out_indices=(1, 2, 3, 4), out_norm=True),
]


@pytest.mark.parametrize("cfg", FAMILIES, ids=lambda c: c["type"])
def test_outputs_are_contiguous_nchw_so_roi_align_pools_the_right_cells(cfg):
    # regression: the out-norm (timm LayerNorm2d) returned channels-last-strided views; the FPN's convs carried
    # that layout on and mmcv's RoIAlign, which reads raw NCHW memory, pooled scrambled features, so Mask R-CNN
    # learned its RPN but not its RoI heads (smoke bbox mAP 0.002 where the fixed backbone reaches > 0.3)
    from mmcv.ops import RoIAlign
    from mmdet.registry import MODELS

    import vssm.mm  # noqa: F401

    torch.manual_seed(0)
    b = MODELS.build(cfg).eval()
    feats = b(torch.randn(1, 3, 64, 64))
    assert all(f.is_contiguous() for f in feats)
    neck = MODELS.build(dict(type="FPN", in_channels=b.channels, out_channels=8, num_outs=4)).eval()
    with torch.no_grad():
        p2 = neck(feats)[0]
    rois = torch.tensor([[0.0, 3.0, 5.0, 40.0, 30.0], [0.0, 20.0, 10.0, 60.0, 62.0]])
    pool = RoIAlign((7, 7), spatial_scale=1 / b.strides[0], sampling_ratio=2, aligned=True)
    assert p2.is_contiguous()
    # pooled from the map as the heads get it == pooled from the same values in NCHW memory
    torch.testing.assert_close(pool(p2, rois), pool(p2.contiguous(), rois))


def test_frozen_stages_and_norm_eval():
    b = build(frozen_stages=1)
    frozen = {n for n, p in b.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("body.stem.", "body.stages.0.")) for n in frozen)
    assert all(p.requires_grad for n, p in b.named_parameters() if n.startswith("body.stages.1."))
    b.train()
    assert not b.body.stem.conv1.training and not b.body.stem.norm1.training
    assert b.body.stages[1].blocks[0].norm1.training
    assert all(n.startswith(("body.stem.", "body.stages.0.")) or p.requires_grad for n, p in b.named_parameters())

    bn = build(norm_eval=True, model_kwargs=dict(d_state=1, ssm_ratio=1.0))
    bn.body.stem.add_module("extra_bn", torch.nn.BatchNorm2d(4))
    bn.train()
    assert not bn.body.stem.extra_bn.training


def test_with_cp_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    a = build()
    b = build(with_cp=True)
    assert all(stage.grad_checkpointing for stage in b.body.stages)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    ya, yb = a(x), b(x)
    for u, v in zip(ya, yb):
        torch.testing.assert_close(u, v)
    sum(y.sum() for y in ya).backward()
    sum(y.sum() for y in yb).backward()
    ga = dict(a.named_parameters())
    for n, p in b.named_parameters():
        torch.testing.assert_close(p.grad, ga[n].grad, atol=1e-5, rtol=1e-4)


def test_drop_path_rate_reaches_the_body():
    b = build(drop_path_rate=0.3, depths=(1, 1, 2, 1))
    rates = [m.drop_prob for m in b.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.3)


def _classifier_checkpoint(tmp_path, **kwargs):
    m = timm.create_model("vmamba_tiny", dims=16, depths=(1, 1, 1, 1), d_state=1, ssm_ratio=1.0, num_classes=10,
                          **kwargs)
    path = tmp_path / "cls.pth"
    torch.save({"model": m.state_dict()}, path)
    return m, path


def test_pretrained_classifier_checkpoint_loads_strictly(tmp_path):
    m, path = _classifier_checkpoint(tmp_path)
    b = build(init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    b.init_weights()
    ours = m.state_dict()
    for k, v in b.body.state_dict().items():
        torch.testing.assert_close(v, ours[k], msg=k)


def test_checkpoint_of_another_size_is_refused_with_the_keys(tmp_path):
    _, path = _classifier_checkpoint(tmp_path)
    b = build(dims=24, init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    with pytest.raises(ValueError, match="does not fit VMamba.*shape mismatch"):
        b.init_weights()


def test_checkpoint_of_another_family_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": timm.create_model("resnet18").state_dict()}, path)
    b = build(pretrained=str(path))
    with pytest.raises(ValueError, match="does not fit VMamba"):
        b.init_weights()


def test_whole_detector_checkpoint_of_ours_loads_its_backbone(tmp_path):
    src = build()
    path = tmp_path / "det.pth"
    sd = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    sd["neck.lateral.weight"] = torch.zeros(3)
    torch.save({"state_dict": sd}, path)
    b = build(pretrained=str(path))
    b.init_weights()
    for k, v in b.state_dict().items():
        torch.testing.assert_close(v, src.state_dict()[k], msg=k)


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match="unknown arch 'huge'"):
        build(arch="huge")
    with pytest.raises(ValueError, match=r"out_indices \(0, 4\) out of range"):
        build(out_indices=(0, 4))
    with pytest.raises(ValueError, match="smaller than the deepest output stride 32"):
        build()(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="NCHW"):
        build()(torch.randn(3, 64, 64))


def test_vim_gives_a_four_level_pyramid_and_layer_decay_follows_its_blocks():
    from mmengine.optim import build_optim_wrapper

    b = build(type="Vim", arch="tiny_patch16_224", img_size=64, depths=None, dims=None,
              model_kwargs=dict(depth=4, embed_dim=32))
    feats = b(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 16, 16), (1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]

    model = torch.nn.Module()
    model.backbone, model.head = b, torch.nn.Linear(32, 2)
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05),
        constructor="LayerDecayOptimWrapperConstructor", paramwise_cfg=dict(layer_decay_rate=0.5)))
    lr_of = {id(p): g["lr"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    inner = b.inner
    assert lr_of[id(inner.patch_embed.proj.weight)] == 0.5 ** 5  # embedding: below the 4 blocks
    assert lr_of[id(inner.blocks[0].mixer.in_proj.weight)] == 0.5 ** 4
    assert lr_of[id(inner.blocks[3].mixer.in_proj.weight)] == 0.5 ** 1
    assert lr_of[id(model.head.weight)] == 1.0 and lr_of[id(b.body.rescale[1].weight)] == 1.0
    assert wd_of[id(inner.pos_embed)] == 0.0 and wd_of[id(model.head.bias)] == 0.0
    assert wd_of[id(model.head.weight)] == 0.05
