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


@register_backbone
class MSVMamba(FamilyBackbone):
    """MSVMamba ('nano' / 'micro' / 'tiny'): multi-scale 2-D scans."""

    model_prefix = "msvmamba_"
    family_module = "vssm.models.msvmamba"


@register_backbone
class EfficientVMamba(FamilyBackbone):
    """EfficientVMamba ('tiny' / 'small' / 'base'): atrous scans in stages 0-1, inverted residuals after."""

    model_prefix = "efficient_vmamba_"
    family_module = "vssm.models.efficient_vmamba"


@register_backbone
class Vim(FamilyBackbone):
    """Vision Mamba ('tiny_patch16_224', 'small_patch16_224', ...): a plain backbone given the 4-level pyramid
    of its segmentation recipe (four blocks' token maps rescaled to strides 4/8/16/32, ``rescale.*``).

    Args:
        img_size: training crop side (sizes the position table; other sizes are resampled on the fly).
        layer_indices: the four blocks feeding the pyramid (default: the last of each quarter of the depth).
        take_from: 'mixer' (the official segmentation backbone taps the blocks' mixer outputs) or 'stream'.
        class_token: the official segmentation configs drop it.
    """

    model_prefix = "vim_"
    family_module = "vssm.models.vim"
    inner_prefix = "model."
    fresh_prefixes = ("rescale.",)

    def __init__(self, arch: str = "tiny_patch16_224", img_size: int = 512, layer_indices=None,
                 take_from: str = "mixer", class_token: bool = False, out_norm: bool = False,
                 model_kwargs: Optional[dict] = None, **kwargs):
        model_kwargs = dict(model_kwargs or {}, img_size=img_size, class_token=class_token)
        if not class_token:
            model_kwargs.setdefault("global_pool", "avg")
        self._pyramid = dict(take_from=take_from)
        if layer_indices is not None:
            self._pyramid["layer_indices"] = tuple(layer_indices)
        super().__init__(arch=arch, model_kwargs=model_kwargs, out_norm=out_norm, **kwargs)

    def _create_body(self, model_name, kwargs):
        self._check_out_indices(self.out_indices, 4)
        body = timm.create_model(model_name, pretrained=False, features_only=True, out_indices=self.out_indices,
                                 **self._pyramid, **kwargs)
        levels = [dict(num_chs=c, reduction=r) for c, r in zip(body.feature_info.channels(),
                                                               body.feature_info.reduction())]
        levels_by_index = {i: lv for i, lv in zip(self.out_indices, levels)}
        return body, [levels_by_index.get(i, dict(num_chs=0, reduction=0)) for i in range(4)]

    def _forward_body(self, x):
        return self.body(x)
