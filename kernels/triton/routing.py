"""Host-side route tables for the Triton kernels.

A kernel program walks route k step by step and needs, for step t, the grid coordinate along every axis.
Each route is flattened here into a small int32 row the kernel reads once per route:

    [length, (axis, size, first, incr) for visiting positions 0 (slowest) .. 2 (fastest)]

Step t is decomposed in mixed radix over the visiting positions' sizes; position j's index i_j becomes the
coordinate ``first_j + incr_j * i_j`` along grid axis ``axis_j`` (``incr`` is negative for flipped axes, and
``first`` is then the last cell of the sub-grid). Grids of fewer than 3 axes are padded with size-1 axes.

The table also says how route k's output meets the earlier routes' (``merge_plan``), so that every program
can write y without zero-filling it first and without a separate merge pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..routes import RouteSet, _route_indices

__all__ = ["MAX_AXES", "RoutePlan", "route_plan"]

MAX_AXES = 3
ROW = 1 + 4 * MAX_AXES  # length, then (axis, size, first, incr) per visiting position


@dataclass(frozen=True)
class RoutePlan:
    """Everything the kernels need to know about a route set on one grid (plain Python values, so that it
    can be computed while torch.compile traces with fake tensors).

    rows: per route, ``(axis, size, first, incr)`` for visiting positions 0..2, flattened (12 ints).
    lengths: steps of every route.
    accumulate: per route, 1 if the cells it visits already hold an earlier route's output (read-add-write),
        0 if it is the first to visit them (plain write). Only meaningful when ``exact`` is True.
    finalize: per route, 1 if no later route visits its cells (so the gate can be applied as it writes).
    exact: True when every route's cells are either all earlier-visited or all fresh, and either all
        later-visited or all final, and every grid cell is visited: then the per-route flags above are exact.
        Otherwise the kernels zero the output first, always read-add-write, and the gate is a separate pass.
    full_cover: every route visits every cell (so per-route gradients need no zero fill).
    """

    rows: tuple[tuple[int, ...], ...]
    lengths: tuple[int, ...]
    accumulate: tuple[int, ...]
    finalize: tuple[int, ...]
    exact: bool
    full_cover: bool

    def table_rows(self) -> list[list[int]]:
        """Rows of the device table: [length, accumulate, finalize, 12 position ints] (exact flags, or the
        safe ones: always accumulate, never finalize)."""
        acc = self.accumulate if self.exact else (1,) * len(self.lengths)
        fin = self.finalize if self.exact else (0,) * len(self.lengths)
        return [[n, a, f, *r] for n, a, f, r in zip(self.lengths, acc, fin, self.rows)]


def _route_row(route, grid: tuple[int, ...]) -> tuple[int, ...]:
    sub = route.subgrid_shape(grid)
    row = [(pad_axis, 1, 0, 0) for pad_axis in range(route.ndim, MAX_AXES)]  # size-1 padding, slowest
    for axis in route.order:
        first, incr = route.start[axis], route.step[axis]
        if route.flips[axis]:
            first, incr = first + incr * (sub[axis] - 1), -incr
        row.append((axis, sub[axis], first, incr))
    return tuple(v for pos in row for v in pos)


@lru_cache(maxsize=256)
def route_plan(routes: RouteSet, grid: tuple[int, ...]) -> RoutePlan:
    """The plan of ``routes`` on ``grid`` (cached: models call this with a few fixed shapes)."""
    if routes.ndim > MAX_AXES:
        raise ValueError(f"the Triton kernels scan grids of at most {MAX_AXES} axes, got a {routes.ndim}-D route set")
    routes.check_grid(grid)
    total = int(np.prod(grid))
    cells = [_route_indices(r, grid) for r in routes]
    visits = np.zeros(total, dtype=np.int64)
    accumulate, exact = [], True
    for idx in cells:
        seen = visits[idx] > 0
        accumulate.append(int(seen.all()))
        exact &= bool(seen.all() or not seen.any())
        visits[idx] += 1
    exact &= bool((visits > 0).all())
    finalize = []
    for idx in cells:
        visits[idx] -= 1
        last = visits[idx] == 0
        finalize.append(int(last.all()))
        exact &= bool(last.all() or not last.any())
    return RoutePlan(
        rows=tuple(_route_row(r, grid) for r in routes),
        lengths=tuple(len(idx) for idx in cells),
        accumulate=tuple(accumulate),
        finalize=tuple(finalize),
        exact=exact,
        full_cover=all(len(idx) == total for idx in cells),
    )
