"""FLOPs with the scan through fvcore and MMEngine (vssm.flops_handles), checked against a hand count of a
one-stage VMamba, and vssm.complexity.count_flops against the same count."""

import pytest
import torch

import vssm  # noqa: F401
from vssm.complexity import count_flops
from vssm.flops_handles import (SCAN_OPERATOR, fvcore_flop_analysis, get_model_complexity_info,
                                mmengine_flop_analyzer, scan_flops_by_module)
from vssm.models.vmamba import VMamba

# one stage, one block: patch stem 4x4 -> 4x4 grid, SS2D with a gate, MLP, classifier
C, N, R, K, HIDDEN, CLASSES, SIDE = 32, 2, 2, 4, 64, 3, 16
DI = C  # ssm_ratio 1.0
L = (SIDE // 4) ** 2


def tiny():
    return VMamba(depths=(1,), dims=(C,), d_state=N, ssm_ratio=1.0, dt_rank=R, gate=True, mlp_ratio=HIDDEN / C,
                  stem="patch", num_classes=CLASSES, drop_path_rate=0.0).eval()


def hand_count():
    """Multiply-adds of every matmul / conv (one FLOP each), the scan, and fvcore's norm convention."""
    macs = {
        "stem conv 4x4/4": L * C * 3 * 4 * 4,
        "in_proj (x and gate z)": L * C * 2 * DI,
        "depthwise conv 3x3": L * DI * 9,
        "x_proj (K routes, R + 2N outputs)": L * DI * K * (R + 2 * N),
        "dt_proj (rank R -> DI per route)": L * K * R * DI,
        "out_proj": L * DI * C,
        "mlp fc1 + fc2": 2 * L * C * HIDDEN,
        "head": C * CLASSES,
    }
    # mamba_ssm's formula per route (batch 1): 9 * L * D * N, plus L * D for the D skip (the gate is outside)
    scan = K * (9 * L * DI * N + L * DI)
    # fvcore: 5 FLOPs per element of an affine LayerNorm: stem norm, norm1, out_norm (DI), norm2, final norm
    norms = 5 * (L * C * 4 + L * DI)
    return sum(macs.values()), scan, norms


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    return tiny(), torch.randn(1, 3, SIDE, SIDE)


def test_scan_flops_per_module(model_and_input):
    model, x = model_and_input
    _, scan, _ = hand_count()
    per = scan_flops_by_module(model, x)
    assert per[""] == scan == 38912
    assert per["stages.0.blocks.0.mixer.ssm"] == scan and per["stem"] == 0 and per["head"] == 0


def test_fvcore_counts_the_scan(model_and_input):
    from fvcore.nn import FlopCountAnalysis, flop_count_table

    model, x = model_and_input
    macs, scan, norms = hand_count()
    plain = FlopCountAnalysis(model, (x,)).unsupported_ops_warnings(False)
    assert plain.total() == macs + norms  # fvcore alone does not see the scan
    ours = fvcore_flop_analysis(model, (x,)).unsupported_ops_warnings(False)
    assert ours.total() == macs + norms + scan == 212064
    ops = ours.by_operator()
    assert ops[SCAN_OPERATOR] == scan and ops["layer_norm"] == norms
    assert ops["conv"] == L * C * 48 + L * DI * 9 and ops["einsum"] == L * K * R * DI
    assert ours.by_module()["stages.0.blocks.0.mixer"] == plain.by_module()["stages.0.blocks.0.mixer"] + scan
    assert ours.total("stages.0.blocks.0.mixer.ssm") == plain.total("stages.0.blocks.0.mixer.ssm") + scan
    assert ours.by_module_and_operator()["stages.0.blocks.0"][SCAN_OPERATOR] == scan
    assert "0.212M" in flop_count_table(ours)


def test_mmengine_counts_the_scan(model_and_input):
    model, x = model_and_input
    macs, scan, norms = hand_count()
    assert mmengine_flop_analyzer(model, (x,)).total() == macs + norms + scan
    info = get_model_complexity_info(model, input_shape=(3, SIDE, SIDE), show_arch=False)
    assert info["flops"] == macs + norms + scan and info["flops_str"] == "0.212M"
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert "0.212M" in info["out_table"]
    with pytest.raises(ValueError, match="exactly one"):
        get_model_complexity_info(model)


def test_count_flops_agrees_without_the_norms(model_and_input):
    """torch's FlopCounterMode (count_flops) counts matmuls, convs and the scan, not the norms."""
    model, x = model_and_input
    macs, scan, _ = hand_count()
    assert count_flops(model, x) == macs + scan == 199264
