"""The selective scan along routes: route descriptions, the PyTorch reference, the Triton kernels.

Importable as ``vssm.kernels``. Nothing here knows about models.
"""

from .complex_scan import complex_scan, complex_scan_ref  # noqa: F401  (complex diagonal decay, time route)
from .flops import count_scan_flops, routed_scan_flops, selective_scan_flops
from .interface import BACKENDS, resolve_backend, routed_selective_scan, selective_scan
from .reference import linear_scan_ref, selective_scan_ref
from .routed_reference import routed_selective_scan_ref
from .routes import Route, RouteSet, atrous2d, bidir1d, cross2d, cross3d, route_set, time_route

__all__ = [
    "count_scan_flops",
    "routed_scan_flops",
    "selective_scan_flops",
    "BACKENDS",
    "Route",
    "RouteSet",
    "atrous2d",
    "bidir1d",
    "cross2d",
    "cross3d",
    "linear_scan_ref",
    "resolve_backend",
    "route_set",
    "routed_selective_scan",
    "routed_selective_scan_ref",
    "selective_scan",
    "selective_scan_ref",
    "time_route",
]
