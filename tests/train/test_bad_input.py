"""Bad input stops the trainer with an error that names the problem, before anything is written."""

import importlib.util
import os
import shutil

import pytest
from train_helpers import fast_argv, fast_options, make_image_folder

from vssm.train import fit

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train_classification.py")


def _snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), folder)] = fh.read()
    return out


def test_empty_dataset_folder(tmp_path):
    os.makedirs(tmp_path / "data" / "train" / "cats")
    os.makedirs(tmp_path / "data" / "val")
    with pytest.raises(ValueError, match="no images found under .*train"):
        fit(fast_options(tmp_path / "data", tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder does not exist"):
        fit(fast_options(tmp_path / "nowhere", tmp_path / "run"))


def test_one_class(tmp_path):
    make_image_folder(tmp_path / "data", classes=1)
    with pytest.raises(ValueError, match="at least 2 classes, found 1 .class_0."):
        fit(fast_options(tmp_path / "data", tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_images_outside_class_folders(tmp_path, image_folder):
    shutil.copy(os.path.join(image_folder, "train", "class_0", "0.png"), os.path.join(image_folder, "train", "x.png"))
    with pytest.raises(ValueError, match="sit directly in"):
        fit(fast_options(image_folder, tmp_path / "run"))


def test_batch_larger_than_dataset(tmp_path, image_folder):
    with pytest.raises(ValueError, match=r"global batch .*64.* larger than the training set \(24 images\)"):
        fit(fast_options(image_folder, tmp_path / "run", batch_size=64))
    assert not os.path.exists(tmp_path / "run")


def test_unknown_model(tmp_path, image_folder):
    with pytest.raises(ValueError, match="unknown model 'vmamba_tiniest'"):
        fit(fast_options(image_folder, tmp_path / "run", model="vmamba_tiniest"))
    assert not os.path.exists(tmp_path / "run")


def test_resume_from_another_model_overwrites_nothing(tmp_path, image_folder):
    run = tmp_path / "run"
    fit(fast_options(image_folder, run, epochs=1))
    before = _snapshot(run)
    assert {"last.pth", "epochs.csv", "steps.csv", "config.yaml", "summary.json"} <= set(before)
    with pytest.raises(ValueError, match="written for model 'test_convnext', but this run trains 'test_vit'"):
        fit(fast_options(image_folder, run, model="test_vit", model_kwargs={"img_size": 32}))
    assert _snapshot(run) == before


def test_command_line_reports_error_and_exit_code(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_classification", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(fast_argv(tmp_path / "empty", tmp_path / "run")) == 2
    assert "error: dataset folder does not exist" in capsys.readouterr().err
