"""tools/convert.py: fake official checkpoints (the families' own key fixtures, random values) convert, load
strictly and keep every value; the report names every key; wrong files fail with a message saying what they are."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import vssm  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
for sub in ("vmamba", "msvmamba_efficientvmamba"):
    sys.path.insert(0, str(ROOT / "tests" / sub))

from ms_ev_official_keys import (EFFICIENT_VMAMBA_CONFIGS, MSVMAMBA_CONFIGS, efficient_vmamba_shapes,  # noqa: E402
                                 msvmamba_shapes)
from test_vim import official_state_shapes as vim_shapes  # noqa: E402
from vmamba_official_keys import official_shapes_for  # noqa: E402

_spec = importlib.util.spec_from_file_location("convert_tool", ROOT / "tools" / "convert.py")
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)


def fake(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(tuple(s), generator=g) if not k.endswith("num_batches_tracked")
                else torch.tensor(7)) for k, s in shapes.items()}


def official(name, num_classes=1000):
    if name.startswith("test_vmamba"):
        return fake(official_shapes_for(name, num_classes=num_classes))
    if name == "test_msvmamba":
        return fake(msvmamba_shapes(*MSVMAMBA_CONFIGS[name], num_classes=num_classes))
    if name == "test_efficient_vmamba":
        depths, dims, d_state = EFFICIENT_VMAMBA_CONFIGS[name]
        return fake(efficient_vmamba_shapes(depths, dims, d_state, num_classes=num_classes))
    if name == "test_vim":
        model = timm.create_model(name)
        m = model.blocks[0].mixer
        return fake(vim_shapes(model.embed_dim, len(model.blocks), model.patch_embed.num_patches,
                               num_classes=num_classes, d_state=m.A_log.shape[-1]))
    raise KeyError(name)


def run(*args):
    return convert.main([str(a) for a in args])


@pytest.mark.parametrize("name", ["test_vmamba", "test_vmamba_v0", "test_vim", "test_msvmamba",
                                  "test_efficient_vmamba"])
def test_official_checkpoint_converts_and_loads_strictly(name, tmp_path, capsys):
    sd = official(name)
    src, dst = tmp_path / "official.pth", tmp_path / "ours.pth"
    torch.save({"model": sd, "epoch": 3}, src)
    assert run("model", "--model", name, src, dst) == 0
    out = capsys.readouterr().out
    assert "0 unexplained" in out and "loads strictly" in out
    mapped = [line for line in out.splitlines() if line.startswith("mapped")]
    # every source key appears in the report as a source of some converted tensor
    assert all(any(f" {k} " in f" {line} " or f"{k} +" in line or f"+ {k} " in line for line in mapped)
               for k in sd), "a source key is missing from the report"
    model = timm.create_model(name)
    model.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    # the values are the official ones (sum over all numbers is preserved: no tensor lost or duplicated)
    total = sum(float(v.double().sum()) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    ours = sum(float(v.double().sum()) for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked"))
    assert ours == pytest.approx(total, rel=1e-9, abs=1e-6)


def test_report_names_stacked_sources_and_reshapes():
    sd = official("test_vim")
    model_state, report, _ = convert.convert_model("test_vim", sd)
    rows = {key: srcs for srcs, key, _ in report.mapped}
    assert rows["blocks.1.mixer.A_log"] == ["layers.1.mixer.A_log", "layers.1.mixer.A_b_log"]
    assert rows["norm.weight"] == ["norm_f.weight"]
    sd = official("test_vmamba")
    _, report, _ = convert.convert_model("test_vmamba", sd)
    rows = {key: srcs for srcs, key, _ in report.mapped}
    assert rows["stages.1.downsample.conv.weight"] == ["layers.0.downsample.1.weight"]
    assert rows["stages.2.blocks.1.mixer.ssm.A_log"] == ["layers.2.blocks.1.op.A_logs"]


def test_classifier_size_and_dropping(tmp_path, capsys):
    sd = official("test_vmamba", num_classes=10)
    src, dst = tmp_path / "official.pth", tmp_path / "ours.pth"
    torch.save(sd, src)
    assert run("model", "--model", "test_vmamba", src, dst) == 1
    assert "has 10 classes" in capsys.readouterr().err
    assert run("model", "--model", "test_vmamba", "--num-classes", "0", src, dst) == 0
    out = capsys.readouterr().out
    assert "dropped  classifier.head.weight  (classifier, removed by --num-classes 0)" in out
    timm.create_model("test_vmamba", num_classes=0).load_state_dict(torch.load(dst), strict=True)
    assert run("model", "--model", "test_vmamba", "--num-classes", "10", src, dst) == 0


def test_unknown_model_and_other_family(tmp_path, capsys):
    src = tmp_path / "vim.pth"
    torch.save({"model": official("test_vim")}, src)
    assert run("model", "--model", "vmamba_tinyy", src, tmp_path / "o.pth") == 1
    assert "unknown model 'vmamba_tinyy'" in capsys.readouterr().err
    assert run("model", "--model", "test_vmamba", src, tmp_path / "o.pth") == 1
    err = capsys.readouterr().err
    assert "does not fit test_vmamba" in err and "looks like a vim checkpoint of test_vim" in err
    assert not (tmp_path / "o.pth").exists()


def test_other_size_of_the_same_family_is_named(tmp_path, capsys):
    src = tmp_path / "v0.pth"
    torch.save(official("test_vmamba_v0"), src)
    assert run("model", "--model", "test_vmamba", src, tmp_path / "o.pth") == 1
    assert "looks like a vmamba_v0 checkpoint of test_vmamba_v0" in capsys.readouterr().err
    assert run("detect", src) == 0
    assert "test_vmamba_v0" in capsys.readouterr().out


def test_unexplained_key_fails(tmp_path, capsys):
    sd = dict(official("test_msvmamba"), **{"layers.0.blocks.0.op.rope": torch.zeros(3)})
    src = tmp_path / "x.pth"
    torch.save(sd, src)
    assert run("model", "--model", "test_msvmamba", src, tmp_path / "o.pth") == 1
    assert "layers.0.blocks.0.op.rope" in capsys.readouterr().err


def test_convs5_flax_npz(tmp_path, capsys):
    from vssm.video.flax_convert import to_flax_params

    ref = timm.create_model("test_convs5")
    src, dst = tmp_path / "params.npz", tmp_path / "ours.pth"
    np.savez(src, **to_flax_params(ref, nested=False))
    assert run("model", "--model", "test_convs5", src, dst) == 0
    assert "sequence_model/layers_1/seq/Lambda_re -> sequence_model.layers.1.cell.Lambda_re" in capsys.readouterr().out
    state = torch.load(dst, weights_only=True)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(state[k], v)
    assert run("model", "--model", "test_convlstm", src, dst) == 1
    assert "looks like a convs5 checkpoint of test_convs5" in capsys.readouterr().err


def test_medical_segmamba_and_vmunet(tmp_path, capsys):
    from vssm.medical import SegMamba

    shapes = json.load(open(ROOT / "tests/medical/official_keys.json"))
    kw = dict(in_channels=1, out_channels=2, feature_size=(8, 16, 16, 16), depths=(1, 1, 1, 1), hidden_size=16)
    net = SegMamba(**kw)
    # the official SegMamba names of this small net: ours with each stacked mixer split into its 3 routes
    sd = {}
    for k, v in net.state_dict().items():
        if ".mixer." not in k:
            sd[k] = torch.randn_like(v) if v.is_floating_point() else v
            continue
        prefix, name = k.split(".mixer.")
        base = f"{prefix}.mamba."
        if name in ("in_proj.weight", "out_proj.weight", "in_proj.bias", "out_proj.bias"):
            sd[base + name] = torch.randn_like(v)
            continue
        for r, s in enumerate(("", "_b", "_s")):
            off = {"conv_weight": f"conv1d{s}.weight", "conv_bias": f"conv1d{s}.bias",
                   "x_proj_weight": f"x_proj{s}.weight", "dt_proj_weight": f"dt_proj{s}.weight",
                   "dt_proj_bias": f"dt_proj{s}.bias", "A_log": f"A{s}_log", "D": f"D{s}"}[name]
            sd[base + off] = torch.randn_like(v[r]).unsqueeze(1) if name == "conv_weight" else torch.randn_like(v[r])
    assert set(k.split(".mamba.")[-1] for k in sd if ".mamba." in k) >= {"A_s_log", "conv1d_b.weight"}
    src, dst = tmp_path / "segmamba.pth", tmp_path / "ours.pth"
    torch.save({"model": sd}, src)
    assert run("medical", "--network", "segmamba", "--kwargs", json.dumps(kw), src, dst) == 0
    out = capsys.readouterr().out
    assert "0 unexplained" in out and "loads strictly" in out
    net.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    assert run("medical", "--network", "vmunet", src, dst) == 1
    assert "looks like SegMamba weights" in capsys.readouterr().err

    assert convert.detect_family(shapes["vmunet_isic"]) == "vmunet"


def test_detect_and_bad_files(tmp_path, capsys):
    assert run("detect", tmp_path / "nope.pth") == 1
    assert "checkpoint not found" in capsys.readouterr().err
    path = tmp_path / "junk.pth"
    torch.save({"foo.bar": torch.zeros(2)}, path)
    assert run("model", "--model", "test_vim", path, tmp_path / "o.pth") == 1
    assert "does not look like any family" in capsys.readouterr().err
    assert convert.detect_family(official("test_efficient_vmamba")) == "efficient_vmamba"
    assert convert.detect_family(official("test_msvmamba")) == "msvmamba"
    assert convert.detect_family({"backbone.layers.0.x": 0, "neck.fpn.w": 0}) == "mm"


def test_mm_detector_checkpoint(tmp_path, capsys):
    """An official-named VMamba Mask R-CNN checkpoint for our smoke config: backbone keys mapped, neck / heads
    unchanged. The official detection backbone deletes the classifier (final norm and head) and adds per-output
    norms, so its checkpoints carry no ``backbone.classifier.*`` keys."""
    try:
        from vssm.mm.convert import build_model_from_config
    except ImportError as err:
        pytest.skip(f"MMDetection stack not installed: {err}")
    from vmamba_official_keys import official_shapes

    config = ROOT / "configs/mmdet/smoke/mask-rcnn_vmamba-smoke.py"
    model = build_model_from_config(str(config))
    ours = model.state_dict()
    body = fake(official_shapes("v2", (1, 1, 1, 1), (32, 64, 128, 256), 1, 1.0))
    sd = {"backbone." + k: v for k, v in body.items() if not k.startswith("classifier.")}
    sd.update({k: torch.randn_like(v) if v.is_floating_point() else v
               for k, v in ours.items() if not k.startswith("backbone.body.")})
    src, dst = tmp_path / "det.pth", tmp_path / "ours.pth"
    torch.save({"state_dict": sd, "meta": {}}, src)
    assert run("mm", "--config", config, src, dst) == 0
    out = capsys.readouterr().out
    assert "0 unexplained" in out and "loads strictly" in out
    assert "backbone.classifier" not in out
    converted = torch.load(dst, weights_only=True)["state_dict"]
    model.load_state_dict(converted, strict=True)
    assert converted.keys() == ours.keys()
    assert run("model", "--model", "test_vmamba", src, tmp_path / "o.pth") == 1
    assert "looks like a detection / segmentation checkpoint" in capsys.readouterr().err


def test_verify_says_when_it_is_skipped(tmp_path, capsys):
    src, dst = tmp_path / "official.pth", tmp_path / "ours.pth"
    torch.save(official("test_vmamba_v0"), src)
    assert run("model", "--model", "test_vmamba_v0", src, dst, "--quiet", "--verify") == 0
    assert "--verify skipped: pass --official-path" in capsys.readouterr().out
    assert run("model", "--model", "test_vmamba_v0", src, dst, "--quiet", "--verify",
               "--official-path", tmp_path / "no_checkout") == 0
    assert "--verify skipped: the official code could not be built" in capsys.readouterr().out
    torch.save(official("test_vim"), src)
    assert run("model", "--model", "test_vim", src, dst, "--quiet", "--verify", "--official-path", tmp_path) == 0
    assert "no official builder for vssm.models.vim" in capsys.readouterr().out


def test_vmunet_init_from_vmamba_v0(tmp_path, capsys):
    """VM-UNet initialised from a VMamba v0 classifier (first release names): encoder and mirrored decoder
    blocks mapped, the rest dropped / left at init with the official load_from's reasons."""
    from vmamba_official_keys import official_shapes
    from vssm.medical import VMUNet

    kw = dict(in_channels=3, out_channels=1, depths=(2, 2, 2, 2), depths_decoder=(2, 2, 2, 1), feature_size=8,
              d_state=4)
    sd = fake(official_shapes("v0", (2, 2, 5, 2), (8, 16, 32, 64), 4, 2.0, old_names=True))
    src, dst = tmp_path / "v0.pth", tmp_path / "ours.pth"
    torch.save({"model": sd}, src)
    assert run("medical", "--network", "vmunet-from-vmamba-v0", "--kwargs", json.dumps(kw), src, dst) == 0
    out = capsys.readouterr().out
    assert "0 unexplained" in out and "left at initialisation" in out
    assert "dropped  head.weight  (no VM-UNet tensor of the same name and shape" in out
    assert "layers.2.blocks.1.ln_1.weight -> decoder.1.blocks.1.norm1.weight" in out  # the mirror
    net = VMUNet(**kw)
    result = net.load_state_dict(torch.load(dst, weights_only=True), strict=False)
    assert not result.unexpected_keys and all(k.startswith(("final_", "decoder.")) for k in result.missing_keys)
    assert run("medical", "--network", "segmamba", src, dst) == 1
    assert "looks like a vmamba_v0 checkpoint" in capsys.readouterr().err


def test_official_vmunet_isic_converts():
    """The official VM-UNet (ISIC) key list, random values: every key mapped, none dropped, loads strictly."""
    shapes = json.load(open(ROOT / "tests/medical/official_keys.json"))["vmunet_isic"]
    sd = fake(shapes)
    state, report, net = convert.convert_medical("vmunet", sd, dict(in_channels=3, out_channels=1))
    assert not report.problems() and not report.dropped and not report.missing
    assert {s for srcs, _, _ in report.mapped for s in srcs} == set(sd)
    net.load_state_dict(state, strict=True)
    torch.testing.assert_close(net.state_dict()["encoder.0.blocks.0.mixer.ssm.A_log"],
                               sd["vmunet.layers.0.blocks.0.self_attention.A_logs"].reshape(4, 192, 16))
