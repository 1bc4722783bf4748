"""Model families, one module each; importing this package registers them with timm."""

from . import vim  # noqa: F401
from . import vmamba  # noqa: F401
from . import msvmamba  # noqa: F401
from . import efficient_vmamba  # noqa: F401
from . import convs5  # noqa: F401
