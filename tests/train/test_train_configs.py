"""The recipe configs: they parse, carry the official numbers, and scale the lr with the global batch."""

import glob
import os

import pytest
import timm

import vssm  # noqa: F401  (registers our models)
from vssm.train import load_config_file, parse_args, scaled_learning_rates

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "classification")
CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG_DIR, "*", "*.yaml"))
                 if os.path.basename(os.path.dirname(p)) != "_base_")


def _config(rel):
    return parse_args(["-c", os.path.join(CONFIG_DIR, rel), "--data-dir", "unused"])


def test_every_family_and_size_has_a_config():
    names = {load_config_file(p)["model"] for p in CONFIGS}
    expected = {"vmamba_tiny", "vmamba_small", "vmamba_base", "vmamba_tiny_v0", "vmamba_small_v0",
                "vmamba_base_v0", "vim_tiny_patch16_224", "vim_small_patch16_224", "vim_base_patch16_224",
                "msvmamba_nano", "msvmamba_micro", "msvmamba_tiny",
                "efficient_vmamba_tiny", "efficient_vmamba_small", "efficient_vmamba_base"}
    assert expected <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_and_names_a_registered_model(path):
    args = parse_args(["-c", path, "--data-dir", "unused"])
    assert args.model and args.drop_path is not None
    family = args.model.split("_")[0]
    if timm.list_models(f"{family}_*"):  # the family is implemented: its config must name a real variant
        assert timm.is_model(args.model), f"{path} names {args.model}, not registered"


def test_swin_recipe_is_the_official_vmamba_one():
    a = _config("vmamba/vmamba_tiny.yaml")
    lrs = scaled_learning_rates(a, world_size=8)  # the official 8 x 128 = 1024 images
    assert lrs["global_batch"] == 1024 and lrs["lr"] == pytest.approx(1e-3)
    assert lrs["warmup_lr"] == pytest.approx(1e-6) and lrs["min_lr"] == pytest.approx(1e-5)
    assert (a.epochs, a.warmup_epochs, a.warmup_prefix, a.opt, a.weight_decay, a.clip_grad) == \
        (300, 20, True, "adamw", 0.05, 5.0)
    assert (a.smoothing, a.aa, a.reprob, a.mixup, a.cutmix, a.model_ema) == \
        (0.1, "rand-m9-mstd0.5-inc1", 0.25, 0.8, 1.0, True)
    drop_path = {m: _config(f"vmamba/{m}.yaml").drop_path for m in ("vmamba_tiny", "vmamba_small", "vmamba_base")}
    assert drop_path == {"vmamba_tiny": 0.2, "vmamba_small": 0.3, "vmamba_base": 0.6}


def test_vim_recipe_differs_where_vim_does():
    t, s = _config("vim/vim_tiny_patch16_224.yaml"), _config("vim/vim_small_patch16_224.yaml")
    assert (t.weight_decay, t.drop_path, s.weight_decay, s.drop_path) == (0.1, 0.0, 0.05, 0.05)
    assert scaled_learning_rates(t, 8)["lr"] == pytest.approx(1e-3)  # 5e-4 x 1024 / 512
    lrs = scaled_learning_rates(s, 8)  # pt-vim-s.sh: --lr 1e-3 at 8 x 64
    assert lrs["lr"] == pytest.approx(1e-3) and lrs["min_lr"] == 1e-5 and lrs["warmup_lr"] == 1e-6
    assert (t.warmup_epochs, t.clip_grad, t.aug_repeats, t.model_ema_decay) == (5, None, 3, 0.99996)


def test_lr_scales_with_processes_and_accumulation():
    a = _config("vmamba/vmamba_small.yaml")
    assert scaled_learning_rates(a, 1)["lr"] == pytest.approx(5e-4 * 128 / 512)
    a.grad_accum_steps = 4
    assert scaled_learning_rates(a, 2)["lr"] == pytest.approx(5e-4 * 128 * 2 * 4 / 512)
    a.lr = 3e-4  # an explicit lr is used as given
    assert scaled_learning_rates(a, 2)["lr"] == 3e-4


def test_command_line_beats_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"_base_: {os.path.abspath(CONFIG_DIR)}/vmamba/vmamba_tiny.yaml\nepochs: 7\n")
    a = parse_args(["-c", str(cfg), "--epochs", "9", "--model-kwargs", "depths=(1,1,1,1)"])
    assert (a.epochs, a.drop_path, a.model, a.model_kwargs) == (9, 0.2, "vmamba_tiny", {"depths": (1, 1, 1, 1)})


def test_unknown_config_key_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: vmamba_tiny\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        parse_args(["-c", str(cfg)])
