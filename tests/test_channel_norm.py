"""channel_norm: exact LayerNorm outside autocast; under autocast it runs in the autocast dtype."""

import torch
import torch.nn.functional as F

from vssm.layers import channel_norm


def test_fp32_is_plain_layer_norm_in_both_layouts():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8)
    last = channel_norm(8, channels_last=True)
    first = channel_norm(8, channels_last=False)
    with torch.no_grad():
        for n in (last, first):
            n.weight.normal_()
            n.bias.normal_()
        first.load_state_dict(last.state_dict())
    expected = F.layer_norm(x, (8,), last.weight, last.bias, 1e-5)
    torch.testing.assert_close(last(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(first(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), expected, rtol=1e-6, atol=1e-6)


def test_autocast_runs_in_autocast_dtype_unless_asked_not_to():
    x = torch.randn(4, 6, 16)
    fast, policy = channel_norm(16, channels_last=True), channel_norm(16, channels_last=True, autocast_dtype=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_fast, y_policy = fast(x), policy(x)
    assert y_fast.dtype == torch.bfloat16 and y_policy.dtype == torch.float32
    torch.testing.assert_close(y_fast.float(), y_policy, rtol=2e-2, atol=2e-2)


def test_autocast_on_meta_device_and_torchscript():
    """FLOPs are counted on the meta device, possibly inside an autocast region; TorchScript keeps working."""
    norm = channel_norm(8, channels_last=True, device="meta")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(torch.empty(2, 8, device="meta")).shape == (2, 8)
    scripted = torch.jit.script(channel_norm(8, channels_last=False))
    assert scripted(torch.randn(1, 8, 2, 3)).shape == (1, 8, 2, 3)
