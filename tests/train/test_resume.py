"""A run killed mid-training and started again ends exactly where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import time

import torch
from train_helpers import fast_argv, fast_options, make_image_folder

from vssm.train import fit
from vssm.train.logs import read_csv

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train_classification.py")


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=16)
    # random augmentation (in a data-loading process), mixup/cutmix, drop path and EMA on: resuming must
    # reproduce their random draws too
    recipe = dict(epochs=4, batch_size=4, workers=1, hflip=0.5, scale=(0.5, 1.0), reprob=0.25, mixup=0.8,
                  cutmix=1.0, drop_path=0.1, warmup_epochs=1, lr=None, lr_base=2e-3)
    whole = fit(fast_options(data, tmp_path / "whole", **recipe))

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, TOOL, *fast_argv(data, killed, **recipe)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(killed / "last.pth") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # at the first checkpoint, in the middle of the second epoch
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"run was not killed mid-way: {proc.returncode} {proc.stderr.read()}"
    epochs_done = torch.load(killed / "last.pth", weights_only=True)["epoch"]
    assert 1 <= epochs_done < 4

    resumed = fit(fast_options(data, killed, **recipe))
    for name, w in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], w, rtol=0, atol=1e-6, msg=name)
    for name, w in whole.ema.state_dict().items():
        torch.testing.assert_close(resumed.ema.state_dict()[name], w, rtol=0, atol=1e-6, msg=name)
    # the logs read like one run: each epoch and step exactly once, same numbers
    for log in ("epochs.csv", "steps.csv"):
        a, b = read_csv(tmp_path / "whole" / log), read_csv(killed / log)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        key = "train_loss" if log == "epochs.csv" else "loss"
        assert [float(r[key]) for r in b] == [float(r[key]) for r in a]
