"""MMDetection / MMSegmentation backbones over the timm models of vssm.

Add ``custom_imports=dict(imports=['vssm.mm'], allow_failed_imports=False)`` to an mmdet or mmseg config and use
``backbone=dict(type='VMamba', arch='tiny', ...)``. Needs the ``mm`` extra and mmcv with its compiled ops:
``bash tools/install_mm.sh .venv``.
"""

from ._deps import require_mm_packages

require_mm_packages()

from .adapter import TimmPyramidBackbone  # noqa: E402
from .backbones import EfficientVMamba, MSVMamba, TimmBackbone, Vim, VMamba  # noqa: E402
from .checkpoint import allow_mmengine_checkpoints, load_backbone_checkpoint  # noqa: E402
from .hooks import DumpReplicaWeightsHook  # noqa: E402
from .official import OfficialEfficientVSSM, OfficialVSSM  # noqa: E402
from .optim import LayerDecayOptimWrapperConstructor  # noqa: E402
from .video import ConvS5Backbone  # noqa: E402

allow_mmengine_checkpoints()  # resume / load_from / test read MMEngine checkpoints with weights_only=True

__all__ = ["TimmPyramidBackbone", "TimmBackbone", "VMamba", "MSVMamba", "EfficientVMamba", "Vim", "OfficialVSSM", "OfficialEfficientVSSM", "ConvS5Backbone", "DumpReplicaWeightsHook", "LayerDecayOptimWrapperConstructor", "allow_mmengine_checkpoints", "load_backbone_checkpoint"]
