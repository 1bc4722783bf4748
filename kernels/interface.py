"""Public scan functions: validate, pick a backend, run.

``selective_scan`` is the one-route op with mamba_ssm's signature; ``routed_selective_scan`` runs a scan along
every route of a :class:`~vssm.kernels.routes.RouteSet` through a feature map and sums the routes' outputs
back in place. Both dispatch to the Triton kernels for CUDA tensors and to the PyTorch reference elsewhere;
``backend=`` or the environment variable ``VSSM_SCAN_BACKEND`` (``reference`` / ``triton``) forces one.
"""

from __future__ import annotations

import math
import os

import torch

from .flops import record_scan_flops, routed_scan_flops, selective_scan_flops
from .reference import selective_scan_ref
from .routed_reference import routed_selective_scan_ref
from .routes import RouteSet
from .validation import check_routed_scan_args, check_selective_scan_args

__all__ = ["selective_scan", "routed_selective_scan", "resolve_backend", "BACKENDS"]

BACKENDS = ("auto", "reference", "triton")
ENV_BACKEND = "VSSM_SCAN_BACKEND"


def _checks_enabled() -> bool:
    """Validation reads tensor values (A's finiteness): skip it while a compiler or tracer runs."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    return not torch.compiler.is_compiling()


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run: ``backend`` unless it is "auto", then ``$VSSM_SCAN_BACKEND``, then the device."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise ValueError(f"{ENV_BACKEND} must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "reference"
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' needs the triton package, which is not installed")
        if device.type != "cuda" and not _interpreting():
            raise RuntimeError(
                f"backend='triton' runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1; "
                f"got tensors on {device.type}")
    return backend


def _triton_ops():
    try:
        from . import triton_ops
    except ImportError as err:  # the Triton path ships with the package; this means a broken install
        raise RuntimeError(f"the Triton scan kernels could not be loaded: {err}") from err
    return triton_ops


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend="auto"):
    """Selective scan along one route, with mamba_ssm's argument names, shapes and semantics.

    Args:
        u, delta: (batch, dim, L).
        A: (dim, N), real (negative for a decaying state).
        B, C: (dim, N) fixed, (batch, N, L) input-dependent, or (batch, G, N, L) grouped, where group g
            serves the contiguous channels ``g*dim/G : (g+1)*dim/G``.
        D, delta_bias: (dim,) or None.  z: (batch, dim, L) or None, the gate ``y * silu(z)``.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        return_last_state: also return the state after the last step, (batch, dim, N).
        backend: "auto", "reference" or "triton".

    Returns y (batch, dim, L) in u's dtype (and the last state in fp32, or fp64 for fp64 inputs).
    """
    if _checks_enabled():
        check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias)
        record_scan_flops(selective_scan_flops(u.shape[0], u.shape[1], u.shape[2], A.shape[1], D is not None,
                                               z is not None))
    if resolve_backend(backend, u.device) == "triton":
        return _triton_ops().selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                            return_last_state)
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def _to_channels_first(x, G: int, channel_dims: int = 1):
    """(..., *grid, c...) -> (..., c..., *grid) for the trailing ``channel_dims`` channel axes."""
    if x is None:
        return None
    lead = x.dim() - G - channel_dims
    perm = list(range(lead)) + list(range(lead + G, x.dim())) + list(range(lead, lead + G))
    return x.permute(perm)


def _to_channels_last(x, G: int):
    lead = x.dim() - G - 1
    perm = list(range(lead)) + list(range(lead + 1, x.dim())) + [lead]
    return x.permute(perm)


def routed_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *,
                          routes: RouteSet, channels_last=False, return_last_state=False, backend="auto"):
    """Selective scan along every route of ``routes`` through a feature map, summed back in place.

    For route k visiting grid cells ``p_0, p_1, ...`` the scan runs over the sequence ``u[..., p_t]`` with
    route k's parameters, and its output at step t is added to ``y[..., p_t]``. The gate, if given, applies to
    the sum: ``y * silu(z)`` (the same as gating every route, since the gate is shared).

    Shapes (channels-first; ``grid`` is 1-D, 2-D or 3-D as ``routes.ndim`` says, K = ``len(routes)``):
        u, delta: (batch, dim, *grid) shared by all routes, or (batch, K, dim, *grid) one map per route.
        A: (K, dim, N).   D, delta_bias: (K, dim) or None.
        B, C: (batch, K, N, *grid), or grouped (batch, K, G, N, *grid) with dim divisible by G.
        z: (batch, dim, *grid) or None.
    With ``channels_last=True`` the channel axis of u, delta, z and the output is last, and B, C are
    (batch, K, *grid, N) or (batch, K, *grid, G, N).

    Returns y shaped like a shared u, in u's dtype; with ``return_last_state`` also (batch, K, dim, N).
    """
    if not isinstance(routes, RouteSet):
        raise ValueError(f"routes must be a RouteSet, got {type(routes).__name__}")
    G = routes.ndim
    if channels_last:
        grouped = B.dim() == G + 4
        u, delta, z = (_to_channels_first(t, G) for t in (u, delta, z))
        B, C = (_to_channels_first(t, G, 2 if grouped else 1) for t in (B, C))
    if _checks_enabled():
        batch, _, dim, N, grid = check_routed_scan_args(u, delta, A, B, C, D, z, delta_bias, routes)
        record_scan_flops(routed_scan_flops(batch, dim, routes.lengths(grid), N, D is not None, z is not None,
                                            math.prod(grid)))
    if resolve_backend(backend, u.device) == "triton":
        result = _triton_ops().routed_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                     routes, return_last_state)
    else:
        result = routed_selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                           routes=routes, return_last_state=return_last_state)
    if not channels_last:
        return result
    if return_last_state:
        return _to_channels_last(result[0], G), result[1]
    return _to_channels_last(result, G)
