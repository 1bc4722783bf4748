"""A linear recurrence with a complex diagonal decay, carried as real/imaginary pairs.

Every state of::

    x_t = a_t * x_{t-1} + b_t          (x_{-1} = initial_state, or 0)

where ``a`` and ``b`` are complex and ``a`` is diagonal: one decay per state channel, shared by every
position of that channel's trailing axes (the pixels of a convolutional SSM). Complex numbers are carried
as pairs of real planes so that fp32 kernels, half-precision inputs and ``torch.compile`` see real tensors:

    b:             (batch, L, 2, C, *rest)   axis 2 holds the real and the imaginary plane
    a:             (2, C)                    the same decay at every step, or
                   (batch, L, 2, C)          one decay per step and batch element
    initial_state: (batch, 2, C, *rest) or None
    returns:       (batch, L, 2, C, *rest)   every state, fp32 (fp64 for fp64 inputs)

The scan runs along the one route of a 1-D route set over the L axis, :func:`~vssm.kernels.routes.time_route`
by default; a flipped route scans from the last step to the first. The PyTorch reference (vectorised,
through :func:`~vssm.kernels.reference.linear_scan_ref` on complex tensors) runs on the CPU; the Triton kernel
runs on CUDA tensors; ``backend=`` or ``$VSSM_SCAN_BACKEND`` forces one, as for the selective scan.
"""

from __future__ import annotations

import torch

from .interface import _checks_enabled, resolve_backend
from .reference import compute_dtype, linear_scan_ref
from .routes import RouteSet, time_route

__all__ = ["complex_scan", "complex_scan_ref", "scan_direction"]


def scan_direction(routes: RouteSet | None) -> bool:
    """Whether ``routes`` (one 1-D route over the steps, default the time route) walks them backwards."""
    if routes is None:
        routes = time_route()
    if not isinstance(routes, RouteSet):
        raise ValueError(f"routes must be a RouteSet, got {type(routes).__name__}")
    if routes.ndim != 1 or len(routes) != 1:
        raise ValueError(f"complex_scan runs along one 1-D route (the time axis); got route set "
                         f"'{routes.name}' with {len(routes)} routes over {routes.ndim}-D grids")
    route = routes[0]
    if route.start != (0,) or route.step != (1,):
        raise ValueError(f"complex_scan visits every step; a route with start {route.start} and step "
                         f"{route.step} would leave some steps without a state")
    return route.flips[0]


def _check_args(a, b, initial_state) -> None:
    for name, x in (("a", a), ("b", b), ("initial_state", initial_state)):
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must hold real/imaginary pairs in a floating-point tensor, got dtype "
                            f"{x.dtype} (convert a complex tensor with torch.stack([z.real, z.imag], dim))")
    if b.dim() < 4 or b.shape[2] != 2:
        raise ValueError(f"b must have shape (batch, L, 2, C, *rest) with the real/imaginary pair on axis 2, "
                         f"got {tuple(b.shape)}")
    batch, length, _, channels = b.shape[:4]
    if a.dim() == 2:
        if tuple(a.shape) != (2, channels):
            raise ValueError(f"a of rank 2 must have shape (2, C) = (2, {channels}), got {tuple(a.shape)}")
    elif a.dim() == 4:
        if tuple(a.shape) != (batch, length, 2, channels):
            raise ValueError(f"a of rank 4 must have shape (batch, L, 2, C) = {(batch, length, 2, channels)}, "
                             f"got {tuple(a.shape)}")
    else:
        raise ValueError(f"a must have shape (2, C) or (batch, L, 2, C), got {tuple(a.shape)}")
    if initial_state is not None:
        expected = (batch, 2) + tuple(b.shape[3:])
        if tuple(initial_state.shape) != expected:
            raise ValueError(f"initial_state must have shape (batch, 2, C, *rest) = {expected}, "
                             f"got {tuple(initial_state.shape)}")
    devices = {x.device for x in (a, b, initial_state) if x is not None}
    if len(devices) != 1:
        raise ValueError(f"a, b and initial_state must be on one device, got {sorted(map(str, devices))}")


def _as_complex(pairs: torch.Tensor, axis: int) -> torch.Tensor:
    return torch.complex(pairs.select(axis, 0), pairs.select(axis, 1))


def _decay_as_complex(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The decay as a complex tensor that broadcasts against b's complex form (batch, L, C, *rest)."""
    a = a.to(dtype)
    rest = (1,) * (b.dim() - 4)
    if a.dim() == 2:
        return _as_complex(a, 0).reshape((1, 1, a.shape[1]) + rest)
    return _as_complex(a, 2).reshape(tuple(a.shape[:2]) + (a.shape[3],) + rest)


def complex_scan_ref(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None,
                     reverse: bool = False) -> torch.Tensor:
    """The PyTorch reference of :func:`complex_scan` (no argument checks); differentiable by autograd."""
    ct = compute_dtype(b.dtype)
    bc = _as_complex(b.to(ct), 2)                      # (batch, L, C, *rest)
    ac = _decay_as_complex(a, b, ct)
    x0 = None if initial_state is None else _as_complex(initial_state.to(ct), 1)
    if reverse:
        bc = bc.flip(1)
        ac = ac.flip(1) if ac.shape[1] > 1 else ac
    states = linear_scan_ref(ac, bc, x0, dim=1)
    if reverse:
        states = states.flip(1)
    return torch.stack([states.real, states.imag], dim=2)


def _triton_complex_scan():
    try:
        from . import triton_complex_scan
    except ImportError as err:  # the Triton path ships with the package; this means a broken install
        raise RuntimeError(f"the Triton complex scan could not be loaded: {err}") from err
    return triton_complex_scan


def complex_scan(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None, *,
                 routes: RouteSet | None = None, backend: str = "auto") -> torch.Tensor:
    """Every state of ``x_t = a_t * x_{t-1} + b_t`` with a complex diagonal ``a`` (see the module docstring).

    Args:
        a: (2, C) constant decay or (batch, L, 2, C) per-step decay, real and imaginary parts.
        b: (batch, L, 2, C, *rest) inputs, real and imaginary planes on axis 2.
        initial_state: (batch, 2, C, *rest) state before the first step, or None for zeros.
        routes: a route set of one 1-D route over the steps (default ``time_route()``).
        backend: "auto", "reference" or "triton".

    Returns every state, (batch, L, 2, C, *rest), fp32 (fp64 for fp64 inputs).
    """
    reverse = scan_direction(routes)
    if _checks_enabled():
        _check_args(a, b, initial_state)
    if resolve_backend(backend, b.device) == "triton":
        return _triton_complex_scan().complex_scan_triton(a, b, initial_state, reverse)
    return complex_scan_ref(a, b, initial_state, reverse)
