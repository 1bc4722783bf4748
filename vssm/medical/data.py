"""Real data that ships inside a package: the MNI152 2009a template from the installed ``nilearn`` wheel.

The wheel holds a skull-stripped T1 template at 1 mm with its grey- and white-matter probability maps (no CSF
map). We read them from the installed package at run time (nothing is downloaded, nothing is copied into this
repository), resample to ``spacing`` mm with MONAI transforms, and label every voxel with
``argmax(1 - gm - wm, gm, wm)``: 0 = background and CSF, 1 = grey matter, 2 = white matter.

Splits hold out slabs along the superior-inferior axis (axis 2 of the RAS-oriented array), never left/right:
the template is symmetric, so a left/right split would test on a mirror image of the training data. The 2-D
setting uses the axial slices of the same slabs, so both settings test on the same voxels.

The *corrupted* setting simulates a realistic acquisition with MONAI's own transforms and a fixed seed: a
smooth multiplicative bias field (``RandBiasField``) and Gaussian noise (``RandGaussianNoise``). Labels stay
those of the clean template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "CLASS_NAMES",
    "TEMPLATE_FILES",
    "TemplateVolume",
    "template_paths",
    "load_template",
    "corrupt_image",
    "slab_split",
    "axial_slices",
    "make_volume",
]

CLASS_NAMES = ("background_csf", "grey_matter", "white_matter")
TEMPLATE_FILES = {
    "image": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
SUPERIOR_AXIS = 2  # of the (X, Y, Z) array once oriented to RAS


@dataclass
class TemplateVolume:
    """One volume (or a slab of it), channel-first: image (1, X, Y, Z) float in [0, 1] before corruption,
    label (1, X, Y, Z) int64 in {0, 1, 2}, mask (1, X, Y, Z) bool (the skull-stripped brain), and the z range
    of the full template it covers."""

    image: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor
    z_range: tuple[int, int]

    def as_dict(self) -> dict:
        return {"image": self.image, "label": self.label, "mask": self.mask}


def template_paths() -> dict[str, str]:
    """Paths of the template files inside the installed nilearn package."""
    try:
        import nilearn
    except ImportError as err:
        raise ImportError("the MNI152 template ships with nilearn: pip install 'vssm[medical]'") from err
    folder = os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data")
    paths = {key: os.path.join(folder, name) for key, name in TEMPLATE_FILES.items()}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"this nilearn install lacks the MNI152 2009a template files: {missing}")
    return paths


def _tissue_label(gm: torch.Tensor, wm: torch.Tensor) -> torch.Tensor:
    """argmax over (1 - gm - wm, gm, wm) for probability maps in [0, 1]."""
    rest = 1.0 - gm - wm
    return torch.stack([rest, gm, wm], 0).argmax(0)


_CACHE: dict[float, TemplateVolume] = {}


def load_template(spacing: float = 2.0) -> TemplateVolume:
    """The whole clean template at ``spacing`` mm (cached per spacing for the process)."""
    if spacing <= 0:
        raise ValueError(f"spacing must be positive (mm), got {spacing}")
    if spacing in _CACHE:
        cached = _CACHE[spacing]
        return TemplateVolume(cached.image.clone(), cached.label.clone(), cached.mask.clone(), cached.z_range)
    from monai.transforms import (Compose, EnsureChannelFirstd, LoadImaged, Orientationd,
                                  ScaleIntensityRanged, Spacingd)

    keys = list(TEMPLATE_FILES)
    pipeline = Compose([
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        # Probabilities are resampled (bilinear) and the label taken afterwards: an argmax at 1 mm resampled
        # with nearest neighbour would alias thin grey-matter ribbons.
        Spacingd(keys, pixdim=(spacing,) * 3, mode="bilinear"),
        ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
    ])
    data = pipeline(template_paths())
    image = torch.as_tensor(np.asarray(data["image"]), dtype=torch.float32)
    gm = torch.as_tensor(np.asarray(data["gm"]), dtype=torch.float32)
    wm = torch.as_tensor(np.asarray(data["wm"]), dtype=torch.float32)
    label = _tissue_label(gm[0], wm[0])[None].long()
    # The template is skull-stripped: the brain is where the T1 is non-zero (a small margin ignores
    # interpolation dust at the edge).
    mask = image > 0.02
    volume = TemplateVolume(image, label, mask, (0, image.shape[-1]))
    _CACHE[spacing] = volume
    return TemplateVolume(image.clone(), label.clone(), mask.clone(), volume.z_range)


def corrupt_image(image: torch.Tensor, seed: int = 0, bias_coeff: tuple[float, float] = (0.0, 0.1),
                  noise_std: float = 0.1) -> torch.Tensor:
    """A realistic acquisition of ``image`` (channel-first, intensities in [0, 1]): a smooth multiplicative
    bias field, then Gaussian noise of standard deviation ``noise_std`` (a fraction of the [0, 1] range),
    both drawn by MONAI transforms from ``seed``."""
    from monai.transforms import RandBiasField, RandGaussianNoise

    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    bias = RandBiasField(degree=3, coeff_range=tuple(bias_coeff), prob=1.0)
    noise = RandGaussianNoise(prob=1.0, mean=0.0, std=noise_std, sample_std=False)
    bias.set_random_state(seed)
    noise.set_random_state(seed + 1)
    out = noise(bias(image.numpy() if isinstance(image, torch.Tensor) else image))
    return torch.as_tensor(np.asarray(out), dtype=torch.float32)


def make_volume(setting: str = "clean", spacing: float = 2.0, seed: int = 0,
                bias_coeff: tuple[float, float] = (0.0, 0.1), noise_std: float = 0.1) -> TemplateVolume:
    """The template in one of the two settings: ``"clean"`` or ``"corrupted"``."""
    volume = load_template(spacing)
    if setting == "clean":
        return volume
    if setting == "corrupted":
        volume.image = corrupt_image(volume.image, seed, bias_coeff, noise_std)
        return volume
    raise ValueError(f"setting must be 'clean' or 'corrupted', got {setting!r}")


def slab_split(volume: TemplateVolume, test_slab: tuple[float, float] = (0.45, 0.7),
               min_train_thickness: int = 1) -> tuple[list[TemplateVolume], TemplateVolume]:
    """Hold out one slab of axial slices for testing; the slices below and above it are for training.

    ``test_slab`` gives the held-out slab's bounds as fractions of the volume's superior-inferior extent.
    Returns ``(train_slabs, test_slab)``: the training part as separate slabs (below and above), so a
    training crop never spans the held-out slab. Slabs thinner than ``min_train_thickness`` slices (a
    crop's depth) are dropped.
    """
    lo_frac, hi_frac = test_slab
    if not 0.0 <= lo_frac < hi_frac <= 1.0:
        raise ValueError(f"test_slab must be fractions 0 <= lo < hi <= 1, got {test_slab}")
    depth = volume.image.shape[-1]
    lo, hi = int(round(lo_frac * depth)), int(round(hi_frac * depth))
    if hi <= lo:
        raise ValueError(f"test_slab {test_slab} selects no slice of a volume {depth} slices deep")

    def part(a: int, b: int) -> TemplateVolume:
        return TemplateVolume(volume.image[..., a:b], volume.label[..., a:b], volume.mask[..., a:b],
                              (volume.z_range[0] + a, volume.z_range[0] + b))

    train = [part(a, b) for a, b in ((0, lo), (hi, depth)) if b - a >= min_train_thickness]
    if not train:
        raise ValueError(f"test_slab {test_slab} leaves no training slab of >= {min_train_thickness} slices")
    return train, part(lo, hi)


def axial_slices(volume: TemplateVolume, brain_only: bool = True) -> list[dict]:
    """The 2-D setting: one data dictionary per axial slice, image/label/mask (1, X, Y). With ``brain_only``,
    slices without brain are skipped."""
    items = []
    for z in range(volume.image.shape[-1]):
        if brain_only and not bool(volume.mask[..., z].any()):
            continue
        items.append({"image": volume.image[..., z], "label": volume.label[..., z],
                      "mask": volume.mask[..., z]})
    return items
