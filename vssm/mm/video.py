"""ConvS5 / ConvLSTM video stacks as an MMEngine backbone for clips (batch, T, C, H, W).

``dict(type='ConvS5Backbone', arch='convs5_moving_mnist')`` builds the per-frame ResNet encoder, the 1x1 input
projection and the stack of sequence layers of a registered video model (its frame decoder is left out), and
returns the latent clip of each layer in ``out_indices`` as (batch, T, channels, h, w). With
``return_states=True`` the forward returns ``(features, last_states)``, one state per layer, for models that
continue the recurrence frame by frame (``step``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import timm
import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS as MMENGINE_MODELS

from .registry import register_backbone


@register_backbone
class ConvS5Backbone(BaseModule):
    def __init__(self, arch: str = "convs5_moving_mnist", out_indices: Sequence[int] = (-1,),
                 return_states: bool = False, model_kwargs: Optional[dict] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        import vssm.models  # noqa: F401  (registers the video models)

        if not timm.is_model(arch) or not (arch.startswith("convs5") or arch.startswith("convlstm")
                                           or arch.startswith("test_convs5")):
            known = timm.list_models("convs5*") + timm.list_models("convlstm*")
            raise ValueError(f"ConvS5Backbone: unknown arch {arch!r}; known video models: {known}")
        predictor = timm.create_model(arch, **(model_kwargs or {}))
        self.check_clip = predictor.check_clip
        self.encoder, self.action_embeds, self.action_conv = (predictor.encoder, predictor.action_embeds,
                                                              predictor.action_conv)
        self.sequence_model = predictor.sequence_model  # same names as the video model: its checkpoints load
        self._inputs, self._actions = predictor._inputs, predictor._actions
        n = len(self.sequence_model.layers)
        resolved = [i % n for i in out_indices] if all(-n <= i < n for i in out_indices) else None
        if not out_indices or resolved is None:
            raise ValueError(f"ConvS5Backbone: out_indices {tuple(out_indices)} out of range for {n} layers")
        if self.sequence_model.skip_connections and self.out_indices != (n - 1,):
            raise ValueError("ConvS5Backbone: intermediate outputs of a stack with skip_connections are not "
                             "supported; use out_indices=(-1,)")
        self.out_indices = tuple(resolved)
        self.return_states = return_states

    def forward(self, video: torch.Tensor, actions: Optional[torch.Tensor] = None, states=None):
        self.check_clip(video)
        b, t = video.shape[:2]
        latents = self.encoder(video.flatten(0, 1))
        latents = latents.reshape((b, t) + tuple(latents.shape[1:]))
        x = self._inputs(latents, self._actions(actions, b, t, video.device))
        if self.sequence_model.skip_connections:
            y, last = self.sequence_model(x, states)
            return ((y,), last) if self.return_states else (y,)
        states = self.sequence_model._states(states, len(self.sequence_model.layers))
        outs, last = [], []
        for i, layer in enumerate(self.sequence_model.layers):
            x, state = layer(x, states[i])
            last.append(state)
            if i in self.out_indices:
                outs.append(x)
        return (tuple(outs), last) if self.return_states else tuple(outs)


MMENGINE_MODELS.register_module(name="ConvS5Backbone", module=ConvS5Backbone, force=True)
