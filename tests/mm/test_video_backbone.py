"""The ConvS5 stack as an MMEngine backbone: builds from a config dict, equals the video model's features."""

import pytest
import timm
import torch

pytestmark = pytest.mark.mm


def _build(**cfg):
    import vssm.mm  # noqa: F401  (registers the backbones)
    from mmengine.registry import MODELS

    return MODELS.build(dict(type="ConvS5Backbone", **cfg))


def test_features_equal_the_video_model():
    torch.manual_seed(0)
    backbone = _build(arch="test_convs5", out_indices=(0, -1), return_states=True).eval()
    predictor = timm.create_model("test_convs5").eval()
    missing, unexpected = predictor.load_state_dict(backbone.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing)
    clip = torch.randn(2, 5, 1, 32, 32)
    with torch.no_grad():
        (first, last), states = backbone(clip)
        expected = predictor.sequence_model(predictor._inputs(predictor.encode(clip),
                                                              torch.zeros(2, 5, dtype=torch.long)))[0]
    assert first.shape == last.shape == expected.shape
    assert len(states) == len(predictor.sequence_model.layers)
    torch.testing.assert_close(last, expected)


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="unknown arch"):
        _build(arch="vmamba_tiny")
    with pytest.raises(ValueError, match="out of range"):
        _build(arch="test_convs5", out_indices=(99,))
    backbone = _build(arch="test_convs5")
    with pytest.raises(ValueError, match=r"\(batch, T, C, H, W\)"):
        backbone(torch.randn(2, 1, 32, 32))
