"""Reference routed scan: gather each route's sequence, run the one-route reference, scatter-add back.

This is the explicit pipeline the fused kernels replace (a copy of the input per route, a copy of the
output per route, a merge), kept as the oracle. Routes of equal length run as one batched scan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .reference import compute_dtype, selective_scan_ref
from .routes import RouteSet

__all__ = ["routed_selective_scan_ref"]


def _route_groups(lengths: list[int]) -> list[list[int]]:
    """Indices of routes grouped by equal length, in first-seen order."""
    groups: dict[int, list[int]] = {}
    for k, n in enumerate(lengths):
        groups.setdefault(n, []).append(k)
    return list(groups.values())


def routed_selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              *, routes: RouteSet, return_last_state=False):
    """Channels-first routed scan (shapes as in ``vssm.kernels.routed_selective_scan``), unvalidated."""
    G = routes.ndim
    K = len(routes)
    grid = tuple(u.shape[-G:])
    batch = u.shape[0]
    dim = A.shape[1]
    total = 1
    for n in grid:
        total *= n
    per_route_u = u.dim() == G + 3
    per_route_delta = delta.dim() == G + 3
    u_flat = u.reshape(u.shape[: u.dim() - G] + (total,))
    delta_flat = delta.reshape(delta.shape[: delta.dim() - G] + (total,))
    B_flat = B.reshape(B.shape[: B.dim() - G] + (total,))
    C_flat = C.reshape(C.shape[: C.dim() - G] + (total,))

    ct = compute_dtype(u.dtype)
    out = torch.zeros(batch, dim, total, dtype=ct, device=u.device)
    last_states = [None] * K
    device_index = {}
    for group in _route_groups(routes.lengths(grid)):
        idx = [routes[k].indices(grid).to(u.device) for k in group]
        device_index.update(zip(group, idx))

        def take(x_flat, per_route):
            parts = [(x_flat[:, k] if per_route else x_flat)[..., i] for k, i in zip(group, idx)]
            return torch.cat(parts, dim=1)

        us = take(u_flat, per_route_u)                       # (batch, n*dim, L)
        dts = take(delta_flat, per_route_delta)
        Bs = torch.cat([B_flat[:, k][..., i] for k, i in zip(group, idx)], dim=1)
        Cs = torch.cat([C_flat[:, k][..., i] for k, i in zip(group, idx)], dim=1)
        if B.dim() == G + 3:                                  # (batch, K, N, *grid): one group per route
            Bs = Bs.reshape(batch, len(group), -1, Bs.shape[-1])
            Cs = Cs.reshape(batch, len(group), -1, Cs.shape[-1])
        else:                                                 # (batch, K, g, N, *grid)
            g, n = B.shape[2], B.shape[3]
            Bs = Bs.reshape(batch, len(group) * g, n, Bs.shape[-1])
            Cs = Cs.reshape(batch, len(group) * g, n, Cs.shape[-1])
        As = A[group].reshape(-1, A.shape[-1])
        Ds = None if D is None else D[group].reshape(-1)
        biases = None if delta_bias is None else delta_bias[group].reshape(-1)
        res = selective_scan_ref(us, dts, As, Bs, Cs, Ds, None, biases, delta_softplus,
                                 return_last_state=return_last_state)
        ys, last = res if return_last_state else (res, None)
        ys = ys.to(ct).reshape(batch, len(group), dim, -1)
        for j, k in enumerate(group):
            out = out.index_add(2, device_index[k], ys[:, j])
            if return_last_state:
                last_states[k] = last.reshape(batch, len(group), dim, -1)[:, j]
    if z is not None:
        out = out * F.silu(z.reshape(batch, dim, total).to(ct))
    out = out.reshape((batch, dim) + grid).to(u.dtype)
    if return_last_state:
        return out, torch.stack(last_states, dim=1)
    return out
