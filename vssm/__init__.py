"""vssm: visual state space model backbones (Vim, VMamba, MSVMamba, EfficientVMamba, ConvS5) on one scan.

``import vssm`` registers every model family with timm.
"""

from . import kernels  # noqa: F401  (vssm.kernels is the top-level kernels/ folder)
from . import models  # noqa: F401  (registers the timm models)

__version__ = "0.1.0"
