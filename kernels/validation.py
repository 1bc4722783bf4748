"""Argument checks for the public scan functions: every failure names the argument and what was expected."""

from __future__ import annotations

import os

import torch

from .routes import RouteSet

__all__ = ["check_selective_scan_args", "check_routed_scan_args"]


def _shape(x) -> tuple:
    return tuple(x.shape)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_float(name: str, x: torch.Tensor) -> None:
    _require(isinstance(x, torch.Tensor), f"{name} must be a tensor, got {type(x).__name__}")
    _require(x.is_floating_point(), f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_values_on(x: torch.Tensor) -> bool:
    """Whether to look at x's values, not only its shape. Always on the CPU. On an accelerator reading a value
    back waits for every queued kernel: one such wait per scan call cost VMamba-T a third of its H100
    inference throughput (the CPU and the GPU stop overlapping), so there it is opt-in through
    ``VSSM_SCAN_CHECK_VALUES=1`` (as in mamba_ssm, a non-finite A then gives non-finite outputs)."""
    if x.device.type == "meta":
        return False
    return x.device.type == "cpu" or os.environ.get("VSSM_SCAN_CHECK_VALUES", "0") == "1"


def _check_A(A: torch.Tensor, expected: str, lead: tuple) -> int:
    _check_float("A", A)
    _require(A.dim() == len(lead) + 1 and _shape(A)[:-1] == lead,
             f"A must have shape {expected}, got {_shape(A)}")
    N = A.shape[-1]
    _require(N >= 1, f"A must have at least one state (N >= 1), got shape {_shape(A)}")
    if _check_values_on(A):
        _require(bool(torch.isfinite(A).all()), "A must be finite (it holds the state decay rates; got inf or nan)")
    return N


def _check_vector(name: str, x, shape: tuple, expected: str) -> None:
    if x is None:
        return
    _check_float(name, x)
    _require(_shape(x) == shape, f"{name} must have shape {expected}, got {_shape(x)}")


def check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state=None) -> None:
    """Shapes of the one-route op (mamba_ssm's): see ``vssm.kernels.selective_scan``."""
    _check_float("u", u)
    _require(u.dim() == 3, f"u must have shape (batch, dim, L), got rank {u.dim()} shape {_shape(u)}")
    batch, dim, L = u.shape
    _require(L >= 1, f"u must have at least one step (L >= 1), got shape {_shape(u)}")
    _check_float("delta", delta)
    _require(_shape(delta) == _shape(u), f"delta must have u's shape {_shape(u)}, got {_shape(delta)}")
    N = _check_A(A, f"(dim, N) = ({dim}, N)", (dim,))
    for name, x in (("B", B), ("C", C)):
        _check_float(name, x)
        if x.dim() == 2:
            _require(_shape(x) == (dim, N), f"{name} of rank 2 must have shape (dim, N) = {(dim, N)}, got {_shape(x)}")
        elif x.dim() == 3:
            _require(_shape(x) == (batch, N, L),
                     f"{name} of rank 3 must have shape (batch, N, L) = {(batch, N, L)}, got {_shape(x)}")
        elif x.dim() == 4:
            G = x.shape[1]
            _require(G >= 1 and _shape(x) == (batch, G, N, L),
                     f"{name} of rank 4 must have shape (batch, G, N, L) = {(batch, 'G', N, L)}, got {_shape(x)}")
            _require(dim % G == 0, f"{name} has G = {G} groups, which must divide dim = {dim}")
        else:
            raise ValueError(f"{name} must have shape (dim, N), (batch, N, L) or (batch, G, N, L), got {_shape(x)}")
    _check_vector("D", D, (dim,), f"(dim,) = ({dim},)")
    _check_vector("delta_bias", delta_bias, (dim,), f"(dim,) = ({dim},)")
    if z is not None:
        _check_float("z", z)
        _require(_shape(z) == _shape(u), f"z must have u's shape {_shape(u)}, got {_shape(z)}")
    if initial_state is not None:
        _check_float("initial_state", initial_state)
        _require(_shape(initial_state) == (batch, dim, N),
                 f"initial_state must have shape (batch, dim, N) = {(batch, dim, N)}, got {_shape(initial_state)}")


def check_routed_scan_args(u, delta, A, B, C, D, z, delta_bias, routes: RouteSet) -> tuple:
    """Shapes of the channels-first routed op; returns (batch, K, dim, N, grid)."""
    _require(isinstance(routes, RouteSet), f"routes must be a RouteSet, got {type(routes).__name__}")
    G, K = routes.ndim, len(routes)
    _check_float("u", u)
    _require(u.dim() in (G + 2, G + 3),
             f"u must have shape (batch, dim, *grid) or (batch, K, dim, *grid) with a {G}-D grid for route set "
             f"'{routes.name}', got rank {u.dim()} shape {_shape(u)}")
    grid = _shape(u)[-G:]
    routes.check_grid(grid)
    batch = u.shape[0]
    if u.dim() == G + 3:
        _require(u.shape[1] == K, f"u has {u.shape[1]} per-route maps, but the route set has K = {K} routes")
    dim = u.shape[-G - 1]
    N = _check_A(A, f"(K, dim, N) = ({K}, {dim}, N)", (K, dim))
    _check_float("delta", delta)
    _require(_shape(delta) in ((batch, dim) + grid, (batch, K, dim) + grid),
             f"delta must have shape {(batch, dim) + grid} or {(batch, K, dim) + grid}, got {_shape(delta)}")
    for name, x in (("B", B), ("C", C)):
        _check_float(name, x)
        if x.dim() == G + 3:
            _require(_shape(x) == (batch, K, N) + grid,
                     f"{name} must have shape (batch, K, N, *grid) = {(batch, K, N) + grid}, got {_shape(x)}")
        else:
            _require(x.dim() == G + 4 and _shape(x)[:2] == (batch, K) and _shape(x)[3:] == (N,) + grid,
                     f"{name} must have shape {(batch, K, N) + grid} or grouped {(batch, K, 'G', N) + grid}, "
                     f"got {_shape(x)}")
            _require(dim % x.shape[2] == 0, f"{name} has G = {x.shape[2]} groups, which must divide dim = {dim}")
    _check_vector("D", D, (K, dim), f"(K, dim) = ({K}, {dim})")
    _check_vector("delta_bias", delta_bias, (K, dim), f"(K, dim) = ({K}, {dim})")
    if z is not None:
        _check_float("z", z)
        _require(_shape(z) == (batch, dim) + grid, f"z must have shape {(batch, dim) + grid}, got {_shape(z)}")
    return batch, K, dim, N, grid
