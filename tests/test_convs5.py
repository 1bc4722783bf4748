"""ConvS5 layer and video predictor: official sizes, parallel vs step mode, precision, conversion, errors."""

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.video import ConvLSTMCell, ConvS5SSM, SequenceStack, VideoPredictor
from vssm.video.flax_convert import convert_flax_params, flatten_flax_params, to_flax_params
from vssm.video.hippo import dplr_hippo, hippo_init


@pytest.mark.parametrize("name, expected", [
    ("convs5_moving_mnist", 21_681_411), ("convs5_moving_mnist_600", 7_409_155),
    ("convlstm_moving_mnist", 40_540_419), ("convlstm_moving_mnist_600", 12_120_067)])
def test_parameter_counts_equal_the_reference(name, expected):
    with torch.device("meta"):   # shapes only: no time spent drawing 40M random numbers
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected
    if name == "convs5_moving_mnist":   # the reference's breakdown
        parts = {k: sum(p.numel() for p in getattr(model, k).parameters())
                 for k in ("encoder", "decoder", "sequence_model", "action_conv", "action_embeds")}
        assert parts == dict(encoder=1_223_552, decoder=1_497_985, sequence_model=18_893_824,
                             action_conv=66_048, action_embeds=2)
        cell = model.sequence_model.layers[0].cell
        assert tuple(cell.B.shape) == (128, 2304, 2) and tuple(cell.C.shape) == (3, 3, 128, 256, 2)
        assert tuple(cell.log_step.shape) == (128, 1) and tuple(cell.Lambda_re.shape) == (128,)


def test_hippo_initialisation():
    lam, v, vinv = hippo_init(16, blocks=2)
    assert lam.shape == (8,) and v.shape == (16, 8) and vinv.shape == (8, 16)
    torch.testing.assert_close(lam.real, torch.full((8,), -0.5, dtype=torch.float64))
    full, _ = dplr_hippo(8)
    torch.testing.assert_close(lam[:4], full[:4])          # half of each conjugate pair, tiled per block
    assert (lam.imag[:4] < 0).all()
    torch.testing.assert_close(vinv @ v, torch.eye(8, dtype=torch.complex128), atol=1e-10, rtol=0)
    cell = ConvS5SSM(8, 16, dt_min=0.01, dt_max=0.02, num_groups=4)
    step = cell.log_step.exp()
    assert ((step >= 0.01 - 1e-7) & (step <= 0.02 + 1e-7)).all()


def _oracle(cell, u, x0):
    """The layer's recurrence in complex128, frame by frame, with B and C read straight from the reference
    layout: x_t = Lambda_bar x_{t-1} + B_bar * u_t, y_t = 2 Re(C * x_t) (before the output block)."""
    p, dim, k = cell.state_dim, cell.dim, cell.kernel_b
    lam_re = cell.Lambda_re.double().clamp(max=-1e-4)
    lam = torch.complex(lam_re, cell.Lambda_im.double())
    step = cell.log_step[:, 0].double().exp()
    lam_bar = torch.exp(lam * step)
    b_bar = ((lam_bar - 1) / lam)[:, None] * torch.complex(cell.B[..., 0].double(), cell.B[..., 1].double())
    b_oihw = b_bar.reshape(p, dim, k, k)
    c_oihw = torch.complex(cell.C[..., 0].double(), cell.C[..., 1].double()).permute(3, 2, 0, 1)
    x = torch.complex(x0[:, 0].double(), x0[:, 1].double())
    ys, pad = [], k // 2
    for t in range(u.shape[1]):
        ut = u[:, t].double()
        bu = torch.complex(F.conv2d(ut, b_oihw.real, padding=pad), F.conv2d(ut, b_oihw.imag, padding=pad))
        x = lam_bar[None, :, None, None] * x + bu
        ys.append(2 * (F.conv2d(x.real, c_oihw.real, padding=pad) - F.conv2d(x.imag, c_oihw.imag, padding=pad)))
    return torch.stack(ys, 1), torch.stack([x.real, x.imag], 1)


def test_layer_matches_complex128_oracle_and_long_clip_precision():
    """1000 frames at the official initialisation, small width: fp32 pairs within ~1e-3 of complex128."""
    cell = ConvS5SSM(8, 8, c_d_block="diag_resnet", num_groups=4).eval()   # no output block: y = 2 Re(C x)
    u = torch.randn(1, 1000, 8, 4, 4)
    x0 = torch.randn(1, 2, 4, 4, 4)
    with torch.no_grad():
        y, last = cell(u, x0)
        y_ref, last_ref = _oracle(cell, u, x0)
    err = (y.double() - y_ref).abs().max().item()
    assert err < 1e-3, f"max abs error over 1000 frames {err} (|y| up to {y_ref.abs().max().item():.2f})"
    assert (last.double() - last_ref).abs().max().item() < 1e-3


@pytest.mark.parametrize("cell_name", ["convs5", "convlstm"])
def test_parallel_and_step_modes_agree(cell_name):
    kwargs = dict(ssm_size=16, num_groups=4) if cell_name == "convs5" else dict(hidden=8)
    stack = SequenceStack(8, 2, cell=cell_name, **kwargs).eval()
    u = torch.randn(2, 7, 8, 5, 6)
    states = [torch.randn(2, 2, 8, 5, 6) * 0.5 for _ in range(2)]
    with torch.no_grad():
        y_par, last_par = stack(u, states)
        run, ys = list(states), []
        for t in range(u.shape[1]):
            y_t, run = stack.step(u[:, t], run)
            ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y_par, atol=2e-5, rtol=1e-5)
    for a, b in zip(run, last_par):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("block, n_params", [("resnet", 2 * (16 + 8 * 8 * 9 + 8)), ("standard", 8 * 8 * 9 + 8 + 16),
                                             ("half_glu", 16 + 8 * 8 + 8), ("diag_resnet", 0)])
def test_output_blocks(block, n_params):
    cell = ConvS5SSM(8, 8, c_d_block=block, num_groups=4)
    assert sum(p.numel() for p in cell.c_d.parameters()) == n_params
    y, state = cell(torch.randn(1, 3, 8, 4, 4))
    assert y.shape == (1, 3, 8, 4, 4) and state.shape == (1, 2, 4, 4, 4)
    y.sum().backward()
    assert all(p.grad is not None for p in cell.parameters())


def test_flax_round_trip_nested_and_npz(tmp_path):
    src = timm.create_model("test_convs5").eval()
    dst = timm.create_model("test_convs5").eval()
    tree = {"params": to_flax_params(src)}
    dst.load_state_dict(convert_flax_params(tree, dst))
    clip = torch.rand(1, 4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(dst(clip), src(clip))
    path = tmp_path / "params.npz"
    np.savez(path, **to_flax_params(src, nested=False))
    flat = flatten_flax_params(np.load(path))
    assert "sequence_model/layers_1/seq/C_D_conv/GroupNorm_1/scale" in flat and "encoder/ResNetBlock_1/skip/kernel" in flat
    dst2 = timm.create_model("test_convs5", pretrained=False)
    from vssm.models.convs5 import checkpoint_filter_fn
    dst2.load_state_dict(checkpoint_filter_fn(np.load(path), dst2))
    with torch.no_grad():
        torch.testing.assert_close(dst2(clip), src(clip))
    lstm = timm.create_model("test_convlstm")
    assert set(flatten_flax_params(to_flax_params(lstm))) >= {"sequence_model/layers_0/seq/A"}


def test_flax_conversion_names_missing_and_unused_keys():
    model = timm.create_model("test_convs5")
    flat = to_flax_params(model, nested=False)
    flat.pop("sequence_model/layers_0/seq/B")
    flat["sequence_model/layers_0/seq/extra"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing \['sequence_model/layers_0/seq/B'\].*unused \['sequence_model/layers_0/seq/extra'\]"):
        convert_flax_params(flat, model)
    flat = to_flax_params(model, nested=False)
    flat["encoder/Conv_0/kernel"] = np.zeros((3, 3, 2, 16))
    with pytest.raises(ValueError, match="encoder/Conv_0/kernel has shape"):
        convert_flax_params(flat, model)


def test_timm_model_forward_loss_and_generation():
    model = timm.create_model("test_convs5")
    clip = torch.rand(2, 5, 1, 32, 32) * 2 - 1
    pred = model(clip)
    assert pred.shape == (2, 4, 1, 32, 32) and pred.abs().max() <= 1
    out = model.loss(clip)
    diff = pred - clip[:, 1:]
    torch.testing.assert_close(out["mse_loss"], diff.pow(2).sum((2, 4)).mean())
    torch.testing.assert_close(out["loss"], 0.5 * out["mse_loss"] + 0.5 * diff.abs().sum((2, 4)).mean())
    model.eval()
    gen = model.generate(clip, num_context=3, num_frames=8)
    assert gen.shape == (2, 8, 1, 32, 32)
    torch.testing.assert_close(gen[:, :3], clip[:, :3])
    with torch.no_grad():   # the first generated frame is the teacher-forced prediction after the context
        torch.testing.assert_close(gen[:, 3], model(clip[:, :4])[:, 2], atol=1e-5, rtol=1e-5)


def test_bad_input_is_named():
    model = timm.create_model("test_convs5")
    with pytest.raises(ValueError, match="rank 4"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="channels-last"):
        model(torch.zeros(2, 5, 32, 32, 1))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.zeros(1, 3, 1, 30, 32))
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.zeros(1, 1, 1, 32, 32))
    with pytest.raises(ValueError, match="num_context"):
        model.generate(torch.zeros(1, 4, 1, 32, 32), num_context=4)
    with pytest.raises(ValueError, match="c_d_block"):
        ConvS5SSM(8, 8, c_d_block="glu")
    with pytest.raises(ValueError, match="odd"):
        ConvS5SSM(8, 8, kernel_b=2)
    with pytest.raises(ValueError, match="num_classes"):
        timm.create_model("test_convs5", num_classes=10)
    cell = ConvS5SSM(8, 8, clip_eigs=False, num_groups=4)
    with torch.no_grad():
        cell.Lambda_re[0] = 0.3
    with pytest.raises(ValueError, match="unstable"):
        cell(torch.zeros(1, 2, 8, 4, 4))
    with pytest.raises(ValueError, match="state must be"):
        ConvLSTMCell(8)(torch.zeros(1, 2, 8, 4, 4), torch.zeros(1, 2, 8, 4, 5))
    with pytest.raises(ValueError, match="hidden size"):
        SequenceStack(8, 1, cell="convlstm", hidden=16)
    with pytest.raises(ValueError, match="cell must be"):
        SequenceStack(8, 1, cell="gru")
    assert isinstance(model, VideoPredictor)


TRITON_MODEL_SCRIPT = """
import torch, timm, vssm
torch.manual_seed(0)
m = timm.create_model("test_convs5")
clip = torch.rand(2, 4, 1, 16, 16) * 2 - 1
res = {}
for backend in ("reference", "triton"):
    for layer in m.sequence_model.layers:
        layer.cell.scan_backend = backend
    m.zero_grad()
    loss = m.loss(clip)["loss"]
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in m.parameters()])
    with torch.no_grad():
        gen = m.eval().generate(clip, 2, 6)
    m.train()
    res[backend] = (loss.detach(), grads, gen)
print("WORST", max((a - b).abs().max().item() for a, b in zip(res["reference"], res["triton"])))
"""


@pytest.mark.triton
def test_model_through_the_triton_scan_in_interpreter():
    """Training loss, every gradient and step-mode generation with the time scan on the Triton kernel
    (TRITON_INTERPRET=1, in a subprocess) match the reference path."""
    pytest.importorskip("triton")
    import os
    import subprocess
    import sys
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env.pop("VSSM_SCAN_BACKEND", None)
    result = subprocess.run([sys.executable, "-c", TRITON_MODEL_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.split("WORST")[-1]) < 1e-4
