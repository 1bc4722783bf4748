"""Which timm models are ours: every model registered from a module of ``vssm.models``."""

from __future__ import annotations

import pkgutil

import timm

from . import models

__all__ = ["model_modules", "list_models"]


def model_modules() -> list[str]:
    """Names of the family modules in ``vssm.models`` (timm files a model under its module's last name)."""
    return sorted(m.name for m in pkgutil.iter_modules(models.__path__) if not m.name.startswith("_"))


def list_models(pattern: str | None = None) -> list[str]:
    """Our registered model names, optionally filtered by a wildcard ``pattern`` (e.g. ``"vmamba*"``)."""
    return timm.list_models(pattern or "", module=model_modules())
