"""Which of our models run timm's own model tests (tests/test_models.py of the pinned timm sdist).

To add a family, append one ``Family``: ``module`` is the file name of its model module (timm's registry
keys models by it; it joins ``FEAT_INTER_FILTERS`` so the forward_intermediates tests run), ``models`` are
run through every test (use small ``test_*`` configurations: these tests run real forwards and backwards on
CPU), ``cfg_only`` patterns are run only through the config / API tests, which build the model on the meta
device and cost no compute (so every full-size registered model is covered), and ``non_std`` marks ViT-like
families for timm's ``NON_STD_FILTERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple


@dataclass(frozen=True)
class Family:
    module: str
    models: Tuple[str, ...]
    cfg_only: Tuple[str, ...] = ()
    non_std: bool = False
    # tests of timm's file to skip for this family, with the reason (shown by pytest -rs)
    skip: Tuple[Tuple[str, str], ...] = field(default=())


FAMILIES = [
    Family(module="vmamba", models=("test_vmamba", "test_vmamba_v0"), cfg_only=("vmamba_*",)),
    Family(module="msvmamba", models=("test_msvmamba",), cfg_only=("msvmamba_*",)),
    Family(module="efficient_vmamba", models=("test_efficient_vmamba",), cfg_only=("efficient_vmamba_*",)),
    Family(module="vim", models=("test_vim",), cfg_only=("vim_*",), non_std=True),
]
