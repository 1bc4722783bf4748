"""ConvS5 (convolutional S5, NeurIPS 2023) video prediction models, and the ConvLSTM baseline, for timm.

``timm.create_model("convs5_moving_mnist")`` builds the Moving-MNIST "noVQ" model of the reference configs
(21,681,411 parameters, like the reference): it takes clips (batch, T, C, H, W) in [-1, 1] and its
``forward`` returns teacher-forced predictions of frames 1..T-1; ``loss`` is the training loss and
``generate`` the autoregressive rollout. The classes live in :mod:`vssm.video`; this module holds the
variants, the timm registration and ``checkpoint_filter_fn`` (parameters of the JAX reference, as a nested
flax dict or a '/'-joined ``.npz``, converted to our layout).

| variant | parameters | reference config |
| --- | --- | --- |
| convs5_moving_mnist | 21,681,411 | Moving-MNIST 300_train_len convS5 noVQ |
| convs5_moving_mnist_600 | 7,409,155 | Moving-MNIST 600_train_len convS5 noVQ |
| convlstm_moving_mnist | 40,540,419 | Moving-MNIST 300_train_len convLSTM noVQ |
| convlstm_moving_mnist_600 | 12,120,067 | Moving-MNIST 600_train_len convLSTM noVQ |
| test_convs5, test_convlstm | small | for tests and CPU training on moving digits |
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from vssm.video import VideoPredictor
from vssm.video.flax_convert import convert_flax_params

__all__ = ["VideoPredictor", "checkpoint_filter_fn"]

# The reference's ConvS5 settings shared by both Moving-MNIST configs.
_CONVS5 = dict(blocks=1, clip_eigs=True, kernel_b=3, kernel_c=3, kernel_d=3, dt_min=0.001, dt_max=0.1,
               c_d_block="resnet", activation="gelu", num_groups=32)
_MNIST = dict(in_chans=1, encoder_depths=(64, 128, 256), encoder_blocks=1, decoder_blocks=1, n_layers=8,
              dropout=0.0, use_norm=True, prenorm=False, per_layer_skip=True, skip_connections=False,
              action_dim=1, action_embed_dim=1, loss_weight=0.5)


def checkpoint_filter_fn(state_dict, model: VideoPredictor) -> Dict[str, torch.Tensor]:
    """Our own state dicts pass through; a flax parameter tree (nested, or flat with '/'-joined keys, as in
    an ``.npz``) is converted, with every key accounted for."""
    keys = list(state_dict.keys()) if hasattr(state_dict, "keys") else list(getattr(state_dict, "files", []))
    if "state_dict" in keys and isinstance(state_dict["state_dict"], dict):
        return checkpoint_filter_fn(state_dict["state_dict"], model)
    flax_like = any("/" in k for k in keys) or any(k in ("params", "encoder", "sequence_model") and
                                                   not torch.is_tensor(state_dict[k]) for k in keys)
    if flax_like:
        return convert_flax_params(state_dict, model)
    return dict(state_dict)


def _cfg(**kwargs) -> Dict[str, Any]:
    return {"url": "", "num_classes": 0, "input_size": (1, 64, 64),
            "mean": (0.5,), "std": (0.5,), "first_conv": "encoder.stem", "classifier": "",
            "license": "other", **kwargs}


default_cfgs = generate_default_cfgs({
    "convs5_moving_mnist": _cfg(),
    "convs5_moving_mnist_600": _cfg(),
    "convlstm_moving_mnist": _cfg(),
    "convlstm_moving_mnist_600": _cfg(),
    "test_convs5": _cfg(input_size=(1, 32, 32)),
    "test_convlstm": _cfg(input_size=(1, 32, 32)),
})


def _create(variant: str, pretrained: bool = False, **kwargs) -> VideoPredictor:
    if kwargs.pop("features_only", False):
        raise ValueError(f"{variant} is a video predictor; features_only is not supported "
                         f"(use model.forward_features for the latent sequence)")
    return build_model_with_cfg(VideoPredictor, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                **kwargs)


def _with_cell(base: dict, cell: str, cell_kwargs: dict, kwargs: dict) -> dict:
    args = dict(base, cell=cell)
    args["cell_kwargs"] = dict(cell_kwargs, **kwargs.pop("cell_kwargs", {}))
    return dict(args, **kwargs)


@register_model
def convs5_moving_mnist(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(dict(_MNIST, d_model=256), "convs5", dict(_CONVS5, ssm_size=256), kwargs)
    return _create("convs5_moving_mnist", pretrained, **args)


@register_model
def convs5_moving_mnist_600(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(dict(_MNIST, d_model=128), "convs5", dict(_CONVS5, ssm_size=128), kwargs)
    return _create("convs5_moving_mnist_600", pretrained, **args)


@register_model
def convlstm_moving_mnist(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(dict(_MNIST, d_model=256), "convlstm", dict(hidden=256, kernel_size=3), kwargs)
    return _create("convlstm_moving_mnist", pretrained, **args)


@register_model
def convlstm_moving_mnist_600(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(dict(_MNIST, d_model=128), "convlstm", dict(hidden=128, kernel_size=3), kwargs)
    return _create("convlstm_moving_mnist_600", pretrained, **args)


_TEST = dict(_MNIST, encoder_depths=(16, 32, 32), norm_groups=8, d_model=32, n_layers=2)


@register_model
def test_convs5(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(_TEST, "convs5", dict(_CONVS5, ssm_size=32, num_groups=8), kwargs)
    return _create("test_convs5", pretrained, **args)


@register_model
def test_convlstm(pretrained: bool = False, **kwargs) -> VideoPredictor:
    args = _with_cell(_TEST, "convlstm", dict(hidden=32, kernel_size=3), kwargs)
    return _create("test_convlstm", pretrained, **args)
