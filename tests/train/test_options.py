"""Less common trainer options run end to end: autocast, accumulation, channels-last, checkpointing, vssm model."""

import math
import os

import timm
import torch
from train_helpers import fast_options

import vssm  # noqa: F401
from vssm.train import fit
from vssm.train.logs import read_csv


def test_bf16_accumulation_channels_last_checkpointing(tmp_path, image_folder):
    args = fast_options(image_folder, tmp_path / "run", epochs=1, amp="bf16", grad_accum_steps=2,
                        channels_last=True, grad_checkpointing=True, mixup=0.8, cutmix=1.0, aug_repeats=0)
    result = fit(args)
    rows = read_csv(os.path.join(tmp_path, "run", "epochs.csv"))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["train_loss"]))
    assert int(rows[0]["step"]) == 3  # 24 images / batch 4 = 6 micro-steps = 3 updates
    assert result.summary["global_batch"] == 8


def test_weight_decay_skips_norms_and_biases(tmp_path, image_folder):
    # create_optimizer_v2 groups: decayed weights vs. 1-d parameters (norms, biases) without decay
    from timm.optim import create_optimizer_v2

    model = timm.create_model("test_convnext", num_classes=3)
    opt = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)
    by_decay = {g["weight_decay"]: g["params"] for g in opt.param_groups}
    assert set(by_decay) == {0.0, 0.05}
    assert all(p.ndim <= 1 for p in by_decay[0.0]) and all(p.ndim > 1 for p in by_decay[0.05])


def test_trains_a_vssm_model(tmp_path, image_folder):
    if not timm.is_model("test_vmamba"):
        import pytest

        pytest.skip("vmamba family not registered")
    kwargs = {"depths": (1, 1, 1, 1)}  # a tuple, as the command line gives it; YAML and checkpoints hold lists
    fit(fast_options(image_folder, tmp_path / "run", model="test_vmamba", model_kwargs=kwargs, epochs=2, lr=3e-3))
    # asking for one more epoch continues the finished run from its checkpoint
    result = fit(fast_options(image_folder, tmp_path / "run", model="test_vmamba", model_kwargs=kwargs, epochs=3,
                              lr=3e-3))
    assert result.summary["epochs_done"] == 3
    rows = read_csv(os.path.join(tmp_path, "run", "steps.csv"))
    assert [int(r["step"]) for r in rows] == list(range(1, 19))  # 6 updates per epoch, each logged once
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert isinstance(result.model, torch.nn.Module)
