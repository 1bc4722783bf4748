"""FLOPs of the selective scan, so model FLOP counts include it.

Convention (mamba_ssm's, used by the official VMamba FLOP tables): one route of length L over ``dim``
channels with ``N`` states costs ``9 * batch * L * dim * N`` (discretise, update, read out), plus
``batch * dim * L`` for the D skip and ``batch * dim * L`` for the z gate. A routed scan is the sum over its
routes (each with its own length), with the gate counted once since it applies to the merged output.

Two ways to see it:
- ``torch.utils.flop_counter.FlopCounterMode`` counts the registered Triton op ``vssm::routed_scan_fwd``
  (formula registered below), and its backward as twice the forward.
- :func:`count_scan_flops` is a context manager that tallies every call of the public scan functions on any
  backend (the PyTorch reference is many elementwise ops that FlopCounterMode does not count).
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["selective_scan_flops", "routed_scan_flops", "count_scan_flops", "record_scan_flops"]

_local = threading.local()


def selective_scan_flops(batch: int, dim: int, length: int, d_state: int, with_D: bool = False,
                         with_z: bool = False) -> int:
    flops = 9 * batch * length * dim * d_state
    if with_D:
        flops += batch * dim * length
    if with_z:
        flops += batch * dim * length
    return flops


def routed_scan_flops(batch: int, dim: int, route_lengths, d_state: int, with_D: bool = False,
                      with_z: bool = False, grid_cells: int | None = None) -> int:
    flops = sum(selective_scan_flops(batch, dim, n, d_state, with_D) for n in route_lengths)
    if with_z:
        flops += batch * dim * (grid_cells if grid_cells is not None else max(route_lengths))
    return flops


class ScanFlopTally:
    """What :func:`count_scan_flops` yields: ``total`` FLOPs and the number of scan ``calls``."""

    def __init__(self):
        self.total = 0
        self.calls = 0


@contextlib.contextmanager
def count_scan_flops():
    """Tally the forward FLOPs of every scan call made inside the block (nested blocks all see them)."""
    tally = ScanFlopTally()
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(tally)
    try:
        yield tally
    finally:
        stack.remove(tally)


def record_scan_flops(flops: int) -> None:
    """Called by the scan functions; a no-op unless a :func:`count_scan_flops` block is open."""
    for tally in getattr(_local, "stack", ()):
        tally.total += int(flops)
        tally.calls += 1


def _register_flop_counter_formula() -> None:
    """Teach FlopCounterMode the routed Triton op's cost (forward; backward counted as 2x forward)."""
    try:
        import torch
        from torch.utils.flop_counter import register_flop_formula

        from .triton import autograd  # noqa: F401  (registers vssm::routed_scan_fwd / _bwd)
        from .routes import RouteSet
    except Exception:  # no triton: the ops do not exist, nothing to register
        return

    def forward_flops(u, delta, A, B, C, D, z, delta_bias, delta_softplus, spec, *args, out_shape=None, **kw):
        routes = RouteSet.from_spec(spec)
        grid = tuple(u.shape[u.dim() - routes.ndim:])
        cells = 1
        for n in grid:
            cells *= n
        return routed_scan_flops(u.shape[0], A.shape[1], routes.lengths(grid), A.shape[2], D is not None,
                                 z is not None, cells)

    def backward_flops(dy, dlast, u, delta, A, B, C, D, z, delta_bias, ysum, states, delta_softplus, spec,
                       *args, out_shape=None, **kw):
        return 2 * forward_flops(u, delta, A, B, C, D, z, delta_bias, delta_softplus, spec)

    register_flop_formula(torch.ops.vssm.routed_scan_fwd)(forward_flops)
    register_flop_formula(torch.ops.vssm.routed_scan_bwd)(backward_flops)


_register_flop_counter_formula()
