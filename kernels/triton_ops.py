"""Triton backend of ``selective_scan`` and ``routed_selective_scan`` (called by ``interface.py`` after
validation). Both run the same fused routed kernel: the one-route op is a single forward route over a
1-D grid. Arguments are channels-first, as ``interface.py`` passes them; strides are used as given.
"""

from __future__ import annotations

from .routes import RouteSet, time_route
from .triton.autograd import routed_scan

__all__ = ["selective_scan", "routed_selective_scan"]


def routed_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          routes: RouteSet = None, return_last_state=False):
    """Shapes and semantics of ``vssm.kernels.routed_selective_scan`` (channels-first)."""
    return routed_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes, return_last_state)


def _as_route_bc(x, batch: int, length: int):
    """One-route B/C as (batch, 1, groups, N, L): (dim, N) fixed becomes one group per channel (a
    broadcast view), (batch, N, L) one group, (batch, G, N, L) G groups."""
    if x.dim() == 2:
        return x[None, None, :, :, None].expand(batch, 1, x.shape[0], x.shape[1], length)
    return x.unsqueeze(1)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False):
    """Shapes and semantics of ``vssm.kernels.selective_scan`` (mamba_ssm's)."""
    batch, _, length = u.shape
    out = routed_scan(
        u, delta, A.unsqueeze(0), _as_route_bc(B, batch, length), _as_route_bc(C, batch, length),
        None if D is None else D.unsqueeze(0), z, None if delta_bias is None else delta_bias.unsqueeze(0),
        delta_softplus, time_route(), return_last_state,
    )
    if return_last_state:
        y, last = out
        return y, last[:, 0]
    return out
