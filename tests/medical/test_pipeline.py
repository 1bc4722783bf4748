"""The MNI152 template pipeline: data, split, corruption, multi-Otsu baseline, and the training engine."""

import json
import os

import pytest
import torch

pytest.importorskip("monai")
pytest.importorskip("nilearn")

from vssm.medical.baseline import multi_otsu_thresholds, otsu_segmentation  # noqa: E402
from vssm.medical.data import axial_slices, load_template, make_volume, slab_split  # noqa: E402
from vssm.medical.engine import load_config, lr_factor, run  # noqa: E402
from vssm.medical.metrics import dice_per_class  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "medical")


def config(*names):
    return [os.path.join(CONFIGS, n) for n in names]


def test_template_labels_and_split():
    vol = load_template(2.0)
    assert vol.image.shape == vol.label.shape == (1, 99, 117, 95)
    assert set(vol.label.unique().tolist()) == {0, 1, 2}
    assert 0.0 <= float(vol.image.min()) and float(vol.image.max()) <= 1.0
    train, test = slab_split(vol, (0.36, 0.64), min_train_thickness=32)
    assert test.z_range == (34, 61)
    # held-out slab: no training slice shares a z index with it, and together they cover the volume
    covered = sorted(z for s in train + [test] for z in range(*s.z_range))
    assert covered == list(range(95))
    assert all(not (s.z_range[0] < test.z_range[1] and test.z_range[0] < s.z_range[1]) for s in train)
    slices = axial_slices(train[0])
    assert slices[0]["image"].shape == (1, 99, 117)
    with pytest.raises(ValueError, match="fractions"):
        slab_split(vol, (0.7, 0.3))
    with pytest.raises(ValueError, match="leaves no training slab"):
        slab_split(vol, (0.1, 0.9), min_train_thickness=32)


def test_corruption_is_seeded_and_hurts_the_baseline():
    clean = make_volume("clean")
    a, b = make_volume("corrupted", seed=0), make_volume("corrupted", seed=0)
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, clean.image)
    assert torch.equal(a.label, clean.label)
    residual = (a.image - clean.image)[~clean.mask]  # outside the brain only the noise is left
    assert 0.08 < float(residual.std()) < 0.12
    _, test_clean = slab_split(clean, (0.36, 0.64))
    _, test_bad = slab_split(a, (0.36, 0.64))
    gm_c, wm_c = dice_per_class(otsu_segmentation(test_clean.image, test_clean.mask), test_clean.label, 3)
    gm_b, wm_b = dice_per_class(otsu_segmentation(test_bad.image, test_bad.mask), test_bad.label, 3)
    assert gm_c > 0.85 and wm_c > 0.9          # two thresholds already work on the clean template
    assert gm_b < gm_c - 0.15 and wm_b < wm_c - 0.1
    with pytest.raises(ValueError, match="setting"):
        make_volume("blurry")


def test_multi_otsu_finds_the_gaps_of_three_modes():
    g = torch.Generator().manual_seed(0)
    values = torch.cat([0.1 + 0.02 * torch.randn(3000, generator=g), 0.5 + 0.02 * torch.randn(3000, generator=g),
                        0.9 + 0.02 * torch.randn(3000, generator=g)])
    t1, t2 = multi_otsu_thresholds(values)
    assert 0.17 < t1 < 0.43 and 0.57 < t2 < 0.83  # anywhere in the empty gaps between the modes
    seg = otsu_segmentation(values, torch.ones_like(values, dtype=torch.bool))
    assert seg.bincount().tolist() == [3000, 3000, 3000]
    with pytest.raises(ValueError, match="empty"):
        otsu_segmentation(values, torch.zeros_like(values, dtype=torch.bool))


def test_dice_per_class_and_label_range():
    label = torch.tensor([[0, 1, 1, 2, 2, 2]])
    assert dice_per_class(label, label, 3) == [1.0, 1.0]
    pred = torch.tensor([[0, 1, 2, 2, 2, 2]])
    assert dice_per_class(pred, label, 3) == pytest.approx([2 / 3, 6 / 7])
    with pytest.raises(ValueError, match="only 3 classes"):
        dice_per_class(label + 1, label, 3)


def test_training_smoke_loss_falls_and_sliding_window_keeps_shape(tmp_path):
    """A short CPU run of VSSMUNet 3-D through the engine: the loss falls, evaluation on the held-out slab
    returns a full-size label map, files are written, and a resumed run continues from the checkpoint."""
    overrides = ["data#setting=clean", "train#steps=14", "train#batch_size=2", "train#samples_per_item=1",
                 "train#checkpoint_every=7", "crop_size=[16,16,16]", "network_def#feature_size=8",
                 "network_def#depths=[0,1]", "optimizer#lr=0.01", "infer#sw_batch_size=8", "infer#overlap=0.25"]
    parser = load_config(config("template_base.json", "vssmunet3d.json"), overrides)
    metrics = run(parser, str(tmp_path), progress=False)
    losses = metrics["losses"]
    assert len(losses) == 14
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1
    assert metrics["test_slab_z"] == [34, 61]
    for name in ("metrics.json", "checkpoint.pt", "overlay.png"):
        assert (tmp_path / name).exists()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["network"]) == {"grey_matter", "white_matter"}
    assert saved["network_mean"] > 0.3          # learnt something in 14 steps
    # resume: 2 more steps on top of the 14 saved ones
    parser = load_config(config("template_base.json", "vssmunet3d.json"), overrides[:1] + ["train#steps=16"] + overrides[2:])
    more = run(parser, str(tmp_path), resume=True, progress=False)
    assert len(more["losses"]) == 2


def test_lr_factor_warmup_then_cosine():
    assert [lr_factor(s, 100) for s in (0, 50, 100, 120)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert [lr_factor(s, 100, 4) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(50, 100, 4) == pytest.approx(0.5)     # the cosine keeps its step count after warmup
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_factor(0, 100, -1)


def test_labels_beyond_out_channels_stop_training(tmp_path):
    overrides = ["train#steps=1", "crop_size=[16,16,16]", "network_def#feature_size=8", "network_def#depths=[0,1]",
                 "network_def#out_channels=2", "num_classes=2"]
    parser = load_config(config("template_base.json", "vssmunet3d.json"), overrides)
    with pytest.raises(ValueError, match="out_channels=2"):
        run(parser, None, progress=False)


@pytest.mark.parametrize("dims,roi", [(2, (32, 32)), (3, (32, 32, 16))])
def test_sliding_window_prediction_keeps_the_volume_shape(dims, roi):
    from vssm.medical import VSSMUNet
    from vssm.medical.engine import evaluate

    _, test = slab_split(make_volume("clean"), (0.36, 0.64))
    net = VSSMUNet(dims, 1, 3, feature_size=4, depths=(0, 1), d_state=2, norm_name="batch")
    result = evaluate(net, test, dims, roi, sw_batch_size=32, overlap=0.0)
    assert result["prediction"].shape == test.label.shape == (1, 99, 117, 27)
    assert set(result["network"]) == {"grey_matter", "white_matter"}
