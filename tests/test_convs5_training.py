"""End to end on the CPU: train a small ConvS5 on moving digits with tools/train_convs5.py, then generate
held-out clips in step mode and beat the copy-last-frame baseline; checkpoint, metrics and PNG strip."""

import importlib.util
import json
import os

import pytest
import torch

from vssm.data import MovingDigits

ROOT = os.path.join(os.path.dirname(__file__), "..")

RECIPE = """
model: test_convs5
data: {image_size: 24, digit_size: 10, num_digits: 1, seq_len: 8, train_clips: 2400, test_clips: 16,
       eval_seq_len: 12, num_context: 4}
train: {steps: 150, batch_size: 16, lr: 0.002, weight_decay: 0.00001, warmup: 10, save_interval: 100}
"""


def _tool():
    spec = importlib.util.spec_from_file_location("train_convs5", os.path.join(ROOT, "tools", "train_convs5.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_moving_digits_split_by_image_and_reproducible():
    train, test = MovingDigits("train", 4, seq_len=5), MovingDigits("test", 4, seq_len=5)
    assert not set(train.digit_ids()) & set(test.digit_ids())
    assert len(train.digit_ids()) + len(test.digit_ids()) == 1797
    clip = train[2]
    assert clip.shape == (5, 1, 64, 64) and clip.min() == -1 and clip.max() > 0.5
    torch.testing.assert_close(clip, MovingDigits("train", 4, seq_len=5)[2])
    assert not torch.equal(clip, train[3])
    with pytest.raises(ValueError, match="split"):
        MovingDigits("val")
    with pytest.raises(ValueError, match="image_size"):
        MovingDigits(image_size=20, digit_size=28)


@pytest.mark.slow
def test_trained_convs5_beats_copy_last_frame_in_step_mode(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    tool = _tool()
    assert tool.main(["-c", str(recipe), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_mse"] < metrics["copy_last_mse"], metrics
    # and it has learnt to move the digit, not only to blank the frame (0.113 vs 0.137 when measured)
    assert metrics["model_mse"] < metrics["blank_mse"], metrics
    assert (out / "strip.png").stat().st_size > 0 and (out / "checkpoint.pt").exists()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 150 and ckpt["recipe"]["model"] == "test_convs5"
    # resuming a finished run trains no further and scores the same model
    assert tool.main(["-c", str(recipe), "--out", str(out), "--no-progress", "--resume"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["model_mse"] == pytest.approx(metrics["model_mse"], rel=1e-5)
