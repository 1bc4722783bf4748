"""The routed scan as two registered torch ops (forward, backward) tied together for autograd.

``torch.library.custom_op`` makes the scan one opaque node for torch.compile (no graph break) with a fake
implementation that only allocates the outputs; ``register_autograd`` plays the role of an
``autograd.Function``. Routes travel as a flat list of ints (``RouteSet.to_spec``) because op schemas take
no Python objects.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..routes import RouteSet
from .launch import compute_dtype, scan_backward, scan_forward

__all__ = ["routed_scan"]


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _or_empty(x: Optional[Tensor], like: Tensor) -> Tensor:
    return x if x is not None else _empty(like)


def _or_none(x: Tensor) -> Optional[Tensor]:
    return None if x.numel() == 0 else x


@torch.library.custom_op("vssm::routed_scan_fwd", mutates_args=())
def routed_scan_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                    z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool,
                    spec: List[int], save_states: bool, return_last_state: bool
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    routes = RouteSet.from_spec(spec)
    y, ysum, last, states, _ = scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes,
                                            save_states, return_last_state)
    return y, _or_empty(ysum, y), _or_empty(last, y), _or_empty(states, y)


@routed_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, spec, save_states, return_last_state):
    routes = RouteSet.from_spec(spec)
    y, ysum, last, states, _ = scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes,
                                            save_states, return_last_state, launch=False)
    return y, _or_empty(ysum, y), _or_empty(last, y), _or_empty(states, y)


@torch.library.custom_op("vssm::routed_scan_bwd", mutates_args=())
def routed_scan_bwd(dy: Tensor, dlast: Optional[Tensor], u: Tensor, delta: Tensor, A: Tensor, B: Tensor,
                    C: Tensor, D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
                    ysum: Tensor, states: Tensor, delta_softplus: bool, spec: List[int]) -> List[Tensor]:
    routes = RouteSet.from_spec(spec)
    grads = scan_backward(dy, u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes, _or_none(ysum),
                          states, dlast)
    return [_or_empty(g, u) for g in grads]


@routed_scan_bwd.register_fake
def _(dy, dlast, u, delta, A, B, C, D, z, delta_bias, ysum, states, delta_softplus, spec):
    like = (u, delta, A, B, C, D, z, delta_bias)
    # real gradients keep the layout of their inputs, except A, D, delta_bias (contiguous sums)
    out = []
    for i, x in enumerate(like):
        if x is None:
            out.append(_empty(u))
        elif i in (2, 5, 7):
            out.append(x.new_empty(x.shape))
        else:
            out.append(torch.empty_like(x, memory_format=torch.preserve_format))
    return out


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, spec, save_states, _ = inputs
    _, ysum, _, states = output
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ysum, states)
    ctx.delta_softplus = delta_softplus
    ctx.spec = spec
    ctx.saved_states = save_states


def _backward(ctx, dy, _dysum, dlast, _dstates):
    if not ctx.saved_states:
        raise RuntimeError("the routed scan ran without saving states (no input required grad at the time)")
    u, delta, A, B, C, D, z, delta_bias, ysum, states = ctx.saved_tensors
    if dy is None:
        grid = tuple(u.shape[u.dim() - ctx.spec[1]:])
        dy = torch.zeros((u.shape[0], A.shape[1]) + grid, dtype=u.dtype, device=u.device)
    if dlast is not None and dlast.numel() == 0:
        dlast = None
    grads = routed_scan_bwd(dy, dlast, u, delta, A, B, C, D, z, delta_bias, ysum, states,
                            ctx.delta_softplus, ctx.spec)
    grads = [_or_none(g) for g in grads]
    return (*grads, None, None, None, None)


torch.library.register_autograd("vssm::routed_scan_fwd", _backward, setup_context=_setup_context)


def routed_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes: RouteSet, return_last_state):
    """Channels-first routed scan on the Triton kernels, differentiable. Returns y (and the last states)."""
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    y, _, last, _ = torch.ops.vssm.routed_scan_fwd(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                                   routes.to_spec(), save, bool(return_last_state))
    return (y, last) if return_last_state else y
