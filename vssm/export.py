"""Export a model for deployment: ``torch.export`` and ONNX through the PyTorch reference scan, with a check.

The Triton kernels are a CUDA training/inference path; exported graphs use the reference scan (plain
elementwise ops, unrolled over ~3 sqrt(L) steps for the traced input size), so the ONNX model runs in any
runtime, onnxruntime on CPU included. The sequence length is baked in: export at the size you deploy.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

__all__ = ["reference_scan", "export_program", "export_onnx", "check_onnx"]


@contextmanager
def reference_scan():
    """Force the PyTorch reference scan for the duration of the block (what exporters can trace)."""
    old = os.environ.get("VSSM_SCAN_BACKEND")
    os.environ["VSSM_SCAN_BACKEND"] = "reference"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("VSSM_SCAN_BACKEND", None)
        else:
            os.environ["VSSM_SCAN_BACKEND"] = old


def export_program(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode at the example's shape."""
    model.eval()
    with reference_scan(), torch.no_grad():
        return torch.export.export(model, (example,))


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | Path, opset: int = 18) -> Path:
    """Write an ONNX file (opset >= 17) for ``model`` at the example's shape; returns the path."""
    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNorm as one op), got {opset}")
    model.eval()
    path = Path(path)
    with reference_scan(), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False)
    program.save(str(path))
    return path


def check_onnx(model: torch.nn.Module, path: str | Path, example: torch.Tensor) -> float:
    """Max absolute difference between onnxruntime (CPU) and PyTorch on ``example``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with reference_scan(), torch.no_grad():
        torch_out = model.eval()(example)
    return float(np.abs(onnx_out - torch_out.numpy()).max())
