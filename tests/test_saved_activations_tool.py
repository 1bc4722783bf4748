"""tools/saved_activations.py: the bytes saved for backward, each storage once, grouped by shape and dtype."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("saved_activations_tool", ROOT / "tools" / "saved_activations.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def test_counts_each_saved_storage_once():
    torch.manual_seed(0)
    # x -> linear (saves x and its weight) -> tanh (saves its output) -> the same linear again (saves the tanh
    # output, already counted, and the same weight, already counted)
    lin = torch.nn.Linear(4, 4, bias=False)
    model = torch.nn.Sequential(lin, torch.nn.Tanh(), lin)
    x = torch.randn(3, 4, requires_grad=True)
    groups = tool.saved_tensor_bytes(model, x, None)
    assert groups[((3, 4), "float32")] == 2 * 3 * 4 * 4  # x and tanh's output
    assert groups[((4, 4), "float32")] == 4 * 4 * 4      # the shared weight once
    assert sum(groups.values()) == 2 * 48 + 64


def test_autocast_dtype_is_what_gets_saved():
    lin = torch.nn.Linear(8, 8)
    groups = tool.saved_tensor_bytes(lin, torch.randn(2, 8), torch.bfloat16)
    assert groups[((2, 8), "bfloat16")] == 2 * 8 * 2  # the input cast to bf16 is what the matmul keeps
