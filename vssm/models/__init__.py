"""Model families, one module each; importing this package registers them with timm."""

from . import vim  # noqa: F401
from . import vmamba  # noqa: F401
