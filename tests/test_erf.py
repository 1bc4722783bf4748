"""ERF tool: the gradient map is centred for a CNN, spreads for an SSM, and the plot is written."""

import importlib.util
from pathlib import Path

import numpy as np
import timm
import torch

import vssm  # noqa: F401

_spec = importlib.util.spec_from_file_location("erf_tool", Path(__file__).resolve().parents[1] / "tools" / "erf.py")
erf_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(erf_tool)


def test_cnn_erf_is_local_and_centred():
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=0)
    erf = erf_tool.effective_receptive_field(model, erf_tool.input_batches("random", 2, 96, 2))
    assert erf.shape == (96, 96)
    cy, cx = np.unravel_index(erf.argmax(), erf.shape)
    assert abs(cy - 48) < 24 and abs(cx - 48) < 24
    assert erf[:8, :8].max() == 0.0  # a 10-layer CNN does not reach the far corner from the centre


def test_ssm_erf_reaches_the_whole_image():
    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", num_classes=0, depth=2)
    erf = erf_tool.effective_receptive_field(model, erf_tool.input_batches("digits", 2, 64, 2))
    assert erf.shape == (64, 64)
    assert (erf > 0).mean() > 0.9  # the scan connects every patch to the centre
    assert 0 < erf_tool.area_fraction(erf) <= 1
