"""Which Triton scan kernels a call runs (``vssm.kernels.triton.launch.kernel_names``): the in-thread kernels
for 4 < N <= 16 when (batch x 32-channel) warps fill the GPU, the tiled ones otherwise, env overrides first."""

import types

import pytest
import torch

pytest.importorskip("triton")
from vssm.kernels.triton import launch  # noqa: E402

CPU = torch.device("cpu")
GPU = torch.device("cuda", 0)


@pytest.fixture
def h100(monkeypatch):
    """A CUDA device with 132 SMs, as far as ``kernel_names`` can tell (no GPU needed)."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: types.SimpleNamespace(
        multi_processor_count=132))
    for var in ("VSSM_SCAN_FWD_KERNEL", "VSSM_SCAN_BWD_KERNEL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("N,expected", [(1, ("nloop", "tile3d")), (4, ("nloop", "tile3d")),
                                        (8, ("seq", "seq")), (16, ("seq", "seq")), (64, ("tile3d", "tile3d"))])
def test_state_size_decides_on_cpu(N, expected, h100):
    assert launch.kernel_names(N, batch=1, groups=1, gsize=8, device=CPU) == expected


def test_gpu_needs_two_warps_per_sm_for_the_in_thread_kernels(h100):
    # Vim-T at batch 128: 128 x 384 / 32 = 1,536 warps; VMamba 56x56 N16: 768; SegMamba stage 1 at batch 2: 6
    assert launch.kernel_names(16, batch=128, groups=1, gsize=384, device=GPU) == ("seq", "seq")
    assert launch.kernel_names(16, batch=128, groups=1, gsize=192, device=GPU) == ("seq", "seq")
    assert launch.kernel_names(16, batch=2, groups=1, gsize=96, device=GPU) == ("tile3d", "tile3d")
    assert launch.kernel_names(16, batch=33, groups=1, gsize=256, device=GPU) == ("seq", "seq")      # 264 warps
    assert launch.kernel_names(16, batch=32, groups=1, gsize=256, device=GPU) == ("tile3d", "tile3d")  # 256
    assert launch.kernel_names(1, batch=128, groups=1, gsize=384, device=GPU) == ("nloop", "tile3d")


def test_environment_overrides(h100, monkeypatch):
    monkeypatch.setenv("VSSM_SCAN_FWD_KERNEL", "tile3d")
    monkeypatch.setenv("VSSM_SCAN_BWD_KERNEL", "seq")
    assert launch.kernel_names(16, batch=128, groups=1, gsize=384, device=GPU) == ("tile3d", "seq")


def test_seq_tiles_one_warp_of_32_channels_and_the_forward_spacing_of_states(h100):
    names = ("seq", "seq")
    fwd = launch.tile_config(16, 384, 197, names)
    bwd = launch.tile_config(16, 384, 197, names, "bwd")
    assert fwd[1:] == (32, 1) and bwd[1:] == (32, 1)
    assert fwd[0] == bwd[0] == launch.tile_config(16, 384, 197, ("tile3d", "tile3d"))[0]  # any fwd pairs any bwd


def test_seq_backward_layout_changes_only_where_it_saves_a_wave(monkeypatch):
    for var in ("VSSM_SCAN_BWD_MAXNREG", "VSSM_SCAN_BWD_SPLIT"):
        monkeypatch.delenv(var, raising=False)
    # 132 SMs: 8 programs per SM uncapped (1,056 in a wave), 12 capped (1,584)
    assert launch.seq_bwd_layout(16, 32, 1536, 132) == (2, 168)     # Vim-T, batch 128: 2 waves -> 1
    assert launch.seq_bwd_layout(16, 32, 768, 132) == (1, None)     # VMamba 56x56 N16: 1 wave already
    assert launch.seq_bwd_layout(16, 32, 1056, 132) == (1, None)
    assert launch.seq_bwd_layout(16, 32, 1057, 132) == (2, 168)
    assert launch.seq_bwd_layout(16, 32, 1584, 132) == (2, 168)
    assert launch.seq_bwd_layout(16, 32, 1585, 132) == (1, None)    # 2 waves either way: no spills for nothing
    assert launch.seq_bwd_layout(16, 8, 1536, 132) == (1, 168)      # a group of 8 channels cannot share states
    assert launch.seq_bwd_layout(16, 32, 1536, None) == (1, None)   # the interpreter: no SMs to fill
    monkeypatch.setenv("VSSM_SCAN_BWD_MAXNREG", "0")
    assert launch.seq_bwd_layout(16, 32, 1536, 132) == (2, None)
    monkeypatch.setenv("VSSM_SCAN_BWD_MAXNREG", "192")
    monkeypatch.setenv("VSSM_SCAN_BWD_SPLIT", "1")
    assert launch.seq_bwd_layout(16, 32, 768, 132) == (1, 192)
    monkeypatch.setenv("VSSM_SCAN_BWD_SPLIT", "2")
    assert launch.seq_bwd_layout(8, 32, 10, None)[0] == 2
    monkeypatch.setenv("VSSM_SCAN_BWD_SPLIT", "3")
    with pytest.raises(ValueError, match="VSSM_SCAN_BWD_SPLIT"):
        launch.seq_bwd_layout(16, 32, 1536, 132)


def _bc_rows(dtype, rank, n_states, batch=2, cells=6):
    """B and C of the in-thread kernels' argument form, cut from one projection row per cell as the models
    make them (Vim: x_proj -> (dt_rank | B | C)): (b, K=1, G=1, N, cells) views with unit state stride."""
    rows = torch.zeros(batch, cells, rank + 2 * n_states, dtype=dtype)
    B = rows[..., rank:rank + n_states].permute(0, 2, 1)[:, None, None]
    C = rows[..., rank + n_states:].permute(0, 2, 1)[:, None, None]
    strides = [list(t.stride()[:4]) + [0, 0, t.stride(-1)] for t in (B, C)]
    return (B, strides[0]), (C, strides[1])


@pytest.mark.parametrize("dtype,rank,n_states,expected", [
    (torch.bfloat16, 24, 16, 8),   # Vim-T: dt_rank 24, per-cell stride 56: two 16-byte loads per step
    (torch.bfloat16, 20, 16, 4),   # rows start 40 bytes in: 8-byte loads
    (torch.bfloat16, 3, 16, 1),    # odd offset: one state at a time
    (torch.float32, 24, 16, 4),    # 16 bytes hold 4 fp32 states
    (torch.bfloat16, 24, 4, 4),    # never more than the states
])
def test_state_vector_alignment_of_projection_rows(dtype, rank, n_states, expected, monkeypatch):
    monkeypatch.delenv("VSSM_SCAN_BC_VECTOR", raising=False)
    bc = _bc_rows(dtype, rank, n_states)
    assert launch.state_vector_alignment(*bc, block_n=n_states, n=n_states) == expected


def test_state_vector_alignment_needs_unit_state_stride_and_whole_vectors(monkeypatch):
    monkeypatch.delenv("VSSM_SCAN_BC_VECTOR", raising=False)
    B = torch.zeros(2, 1, 1, 16, 6, dtype=torch.bfloat16)              # channels-first: state stride = cells
    view = (B, list(B.stride()[:4]) + [0, 0, B.stride(-1)])
    assert launch.state_vector_alignment(view, view, block_n=16, n=16) == 1
    bc = _bc_rows(torch.bfloat16, 24, 12)                               # N = 12 padded to 16: masked tail
    assert launch.state_vector_alignment(*bc, block_n=16, n=12) == 1
    monkeypatch.setenv("VSSM_SCAN_BC_VECTOR", "0")
    assert launch.state_vector_alignment(*_bc_rows(torch.bfloat16, 24, 16), block_n=16, n=16) == 1
