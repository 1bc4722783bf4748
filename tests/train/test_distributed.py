"""One process with batch 2B and two torchrun processes (gloo, CPU) with batch B train the same model."""

import os
import subprocess
import sys

import pytest
import torch
from train_helpers import fast_argv, fast_options

from vssm.train import fit
from vssm.train.logs import read_csv

WORKER = os.path.join(os.path.dirname(__file__), "ddp_worker.py")


def _losses(run):
    return [float(r["loss"]) for r in read_csv(os.path.join(run, "steps.csv"))]


def test_two_processes_match_one_process(tmp_path, image_folder):
    # 24 images, global batch 8: 3 steps per epoch, 2 epochs; no random augmentation so both runs see identical
    # global batches (the samplers draw from one seeded permutation); EMA and gradient clipping stay on.
    one = fit(fast_options(image_folder, tmp_path / "one", batch_size=8, no_aug=True))

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
           *fast_argv(image_folder, tmp_path / "two", batch_size=4, no_aug=True)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout and "global batch 8" in proc.stdout

    one_losses, two_losses = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    print("losses, 1 process:", one_losses, "\nlosses, 2 processes:", two_losses)
    assert len(one_losses) == len(two_losses) == 6
    assert two_losses == pytest.approx(one_losses, rel=1e-4, abs=1e-5)
    assert one_losses[-1] < one_losses[0]  # it learns

    rank0 = torch.load(tmp_path / "two" / "weights_rank0.pt")
    rank1 = torch.load(tmp_path / "two" / "weights_rank1.pt")
    for name, w in rank0.items():
        assert torch.equal(w, rank1[name]), f"ranks disagree on {name}"
        torch.testing.assert_close(w, one.model.state_dict()[name], rtol=1e-4, atol=1e-5)
    # only rank 0 wrote the run files
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one")) + \
        ["weights_rank0.pt", "weights_rank1.pt"]
