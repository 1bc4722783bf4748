"""Layer-wise learning-rate decay for our backbones (Vim's segmentation recipe), from timm's group matchers.

mmseg's own ``LayerDecayOptimizerConstructor`` finds layers by BEiT's parameter names; ours come from the
timm model inside the backbone, whose ``group_matcher`` already says which block each parameter belongs to.
"""

from __future__ import annotations

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from timm.models import group_parameters

_NO_DECAY_NAMES = ("pos_embed", "cls_token")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg=dict(layer_decay_rate=0.92)``: the embedding gets ``rate ** (L + 1)`` of the base lr,
    block i ``rate ** (L - i)``, everything after the backbone's blocks (pyramid, neck, heads) the base lr.
    No weight decay on 1-D parameters, biases, position embeddings and class tokens.
    """

    def add_params(self, params, module, prefix="", is_dcn_module=None):
        rate = self.paramwise_cfg.get("layer_decay_rate")
        if rate is None:
            raise ValueError("LayerDecayOptimWrapperConstructor needs paramwise_cfg=dict(layer_decay_rate=...)")
        backbone = module.backbone
        inner = backbone.inner
        groups = group_parameters(inner, inner.group_matcher(coarse=False))
        layer_of = {}
        for layer, gid in enumerate(sorted(groups)):
            for name in groups[gid]:
                layer_of[f"backbone.body.{backbone.inner_prefix}{name}"] = layer
        top = len(groups)
        scales = []
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            scale = rate ** (top - layer_of.get(name, top))
            no_decay = p.ndim == 1 or name.endswith(".bias") or name.split(".")[-1] in _NO_DECAY_NAMES
            params.append(dict(params=[p], lr=self.base_lr * scale, weight_decay=0.0 if no_decay else self.base_wd))
            scales.append(scale)
        MMLogger.get_current_instance().info(
            f"layer-wise lr decay {rate}: {top} backbone layers, lr scales {min(scales):.4f}..{max(scales):.4f}")
