"""UperNet with a VMamba backbone: learns, saves, resumes, and tools/test.py reproduces the logged mIoU."""

import pytest
import torch

from mm_helpers import run_tool
from smoke import SEG_SMOKE, evaluate, last_metric, logged_scalars, schedule_options

ITERS = 40
# background-only prediction gives ~0.2 mIoU over the 4 classes; thresholds and measured values in notes/mm.md
MIN_TRAINED_MIOU = 50.0
MAX_UNTRAINED_MIOU = 30.0


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    from vssm.mm.smoke_data import make_ade_segmentation

    root = tmp_path_factory.mktemp("ade")
    make_ade_segmentation(str(root), n_train=48, n_val=12, size=256)
    return {"VSSM_SMOKE_ADE": str(root)}


def test_upernet_vmamba_learns_resumes_and_tests(ade, tmp_path):
    untrained = evaluate(SEG_SMOKE, "none", tmp_path / "untrained", ade)["mIoU"]
    run_tool("tools/train.py", str(SEG_SMOKE), "--work-dir", str(tmp_path / "train"),
             *schedule_options(ITERS, ckpt_interval=ITERS // 2), env=ade)
    logged = last_metric(tmp_path / "train", "mIoU")
    print(f"mIoU untrained {untrained:.2f}, after {ITERS} iterations {logged:.2f}")
    assert untrained <= MAX_UNTRAINED_MIOU
    assert logged >= MIN_TRAINED_MIOU

    # the saved checkpoint gives the logged metric
    final = tmp_path / "train" / f"iter_{ITERS}.pth"
    assert evaluate(SEG_SMOKE, final, tmp_path / "test", ade)["mIoU"] == pytest.approx(logged, abs=0.01)

    # resume from the middle checkpoint: continues at ITERS // 2, ends at ITERS with the optimizer state restored
    half = tmp_path / "train" / f"iter_{ITERS // 2}.pth"
    run_tool("tools/train.py", str(SEG_SMOKE), "--work-dir", str(tmp_path / "resumed"), "--resume", str(half),
             *schedule_options(ITERS, ckpt_interval=ITERS // 2), env=ade)
    steps = [r["step"] for r in logged_scalars(tmp_path / "resumed") if "loss" in r]
    assert min(steps) > ITERS // 2 and max(steps) == ITERS
    from vssm.mm.checkpoint import read_checkpoint

    resumed = read_checkpoint(str(tmp_path / "resumed" / f"iter_{ITERS}.pth"))
    assert resumed["meta"]["iter"] == ITERS
    assert resumed["optimizer"]["state"], "optimizer state missing from the checkpoint"
    assert last_metric(tmp_path / "resumed", "mIoU") >= MIN_TRAINED_MIOU


def test_torchrun_two_processes_gloo_end_with_identical_weights(ade, tmp_path):
    cfg = tmp_path / "ddp.py"
    cfg.write_text(f"_base_ = ['{SEG_SMOKE}']\ncustom_hooks = [dict(type='DumpReplicaWeightsHook')]\n")
    work = tmp_path / "ddp"
    run_tool("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "tools/train.py", str(cfg),
             "--launcher", "pytorch", "--work-dir", str(work), *schedule_options(6, val_interval=1000, log_interval=2), env=ade)
    r0, r1 = (torch.load(work / f"replica_rank{r}.pth", weights_only=True) for r in (0, 1))
    assert r0["params"].keys() == r1["params"].keys()
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), f"replicas differ in {k}"
    # and training moved them: compare with the initial weights of a fresh build is costly; check the log instead
    steps = [r["step"] for r in logged_scalars(work) if "loss" in r]
    assert max(steps) == 6
