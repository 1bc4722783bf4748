"""The registered backbone types: one per family of ours, plus a generic one for any timm model.

A family type takes ``arch`` (the timm variant name without the family prefix, e.g. 'tiny' for
``vmamba_tiny``) and optionally explicit ``depths`` / ``dims``; everything else goes to
:class:`TimmPyramidBackbone`. Family modules are imported when a backbone is built, so ``import vssm.mm``
does not depend on every family being present.
"""

from __future__ import annotations

import importlib
from typing import Optional, Sequence

import timm

from .adapter import TimmPyramidBackbone
from .registry import register_backbone


@register_backbone
class TimmBackbone(TimmPyramidBackbone):
    """Any timm model with ``forward_intermediates``: ``dict(type='TimmBackbone', model_name='resnet18')``."""

    def __init__(self, model_name: str, out_norm: bool = False, **kwargs):
        super().__init__(model_name, out_norm=out_norm, **kwargs)


class FamilyBackbone(TimmPyramidBackbone):
    """A family of ours: subclasses set the timm name prefix and the module holding the family."""

    model_prefix: str = ""
    family_module: str = ""

    def __init__(self, arch: str = "tiny", depths: Optional[Sequence[int]] = None, dims=None,
                 model_kwargs: Optional[dict] = None, **kwargs):
        module = importlib.import_module(self.family_module)  # registers the family's timm models
        type(self).checkpoint_filter = staticmethod(module.checkpoint_filter_fn)
        model_name = self.model_prefix + arch
        if not timm.is_model(model_name):
            raise ValueError(f"{type(self).__name__}: unknown arch {arch!r}; known: {self.archs()}")
        model_kwargs = dict(model_kwargs or {})
        if depths is not None:
            model_kwargs["depths"] = tuple(depths)
        if dims is not None:
            model_kwargs["dims"] = dims if isinstance(dims, int) else tuple(dims)
        super().__init__(model_name, model_kwargs=model_kwargs, **kwargs)
        extra = ", ".join(f"{k}={v}" for k, v in model_kwargs.items())
        self.arch_desc = f"arch={arch!r}" + (f", {extra}" if extra else "")

    @classmethod
    def archs(cls) -> list[str]:
        importlib.import_module(cls.family_module)
        return [n[len(cls.model_prefix):] for n in timm.list_models(cls.model_prefix + "*")]


@register_backbone
class VMamba(FamilyBackbone):
    """VMamba (v2 'tiny' / 'small' / 'base' and the original 'tiny_v0' / 'small_v0' / 'base_v0')."""

    model_prefix = "vmamba_"
    family_module = "vssm.models.vmamba"
