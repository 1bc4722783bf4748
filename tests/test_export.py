"""torch.export and ONNX export of every image family (small configs), checked in onnxruntime on CPU."""

import pytest
import timm
import torch

import vssm  # noqa: F401
from vssm.export import check_onnx, export_onnx, export_program

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# One small configuration per family: the same code paths as the full models, fewer/narrower blocks.
SMALL = {
    "vmamba_tiny": dict(depths=(1, 1, 1, 1), dims=16),
    "vim_tiny_patch16_224": dict(depth=2),
    "msvmamba_nano": dict(depths=(1, 1, 1, 1), dims=16),
    "efficient_vmamba_tiny": dict(depths=(1, 1, 1, 1), dims=16),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_onnx_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **SMALL[name]).eval()
    example = torch.randn(1, 3, 32, 48)  # small: export unrolls the reference scan's ~3 sqrt(L) steps
    path = export_onnx(model, example, tmp_path / f"{name}.onnx")
    assert check_onnx(model, path, example) <= 1e-4


def test_torch_export_program_runs():
    model = timm.create_model("vmamba_tiny", num_classes=10, **SMALL["vmamba_tiny"]).eval()
    example = torch.randn(2, 3, 64, 64)
    program = export_program(model, example)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(example), model(example), rtol=1e-5, atol=1e-5)


def test_onnx_rejects_old_opset(tmp_path):
    model = timm.create_model("vim_tiny_patch16_224", num_classes=10, depth=1)
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(model, torch.randn(1, 3, 32, 32), tmp_path / "m.onnx", opset=13)
