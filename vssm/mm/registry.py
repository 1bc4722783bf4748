"""Register a backbone class in both toolkits' MODELS registries, so one config type works in mmdet and mmseg."""

from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS


def register_backbone(cls=None, *, name=None):
    def _register(c):
        MMDET_MODELS.register_module(name=name or c.__name__, module=c, force=True)
        MMSEG_MODELS.register_module(name=name or c.__name__, module=c, force=True)
        return c

    return _register(cls) if cls is not None else _register
