"""Medical segmentation: VM-UNet (2-D), SegMamba (3-D) and VSSMUNet (2-D / 3-D) on the routed scan, with MONAI
argument names and output convention (logits), checkpoint converters, and a training pipeline on the MNI152
template that ships with nilearn (``vssm.medical.engine``, ``tools/train_medical.py``).

MONAI has no network registry; a bundle config builds these with ``"_target_": "vssm.medical.VSSMUNet"``.
"""

from .convert import convert_segmamba_official, convert_vmunet_official, vmunet_init_from_vmamba_v0
from .segmamba import SegMamba, TriOrientedMambaLayer, tri_orientated_routes
from .vmunet import VMUNet, vmunet_isic, vmunet_synapse
from .vssm_unet import VSSMUNet

__all__ = [
    "VMUNet", "vmunet_isic", "vmunet_synapse", "SegMamba", "TriOrientedMambaLayer", "tri_orientated_routes",
    "VSSMUNet", "convert_segmamba_official", "convert_vmunet_official", "vmunet_init_from_vmamba_v0",
]
