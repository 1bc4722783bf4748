"""Routes: visiting orders through a feature map, described as data.

A *route* visits the cells of a (possibly strided) sub-grid of a feature map in a fixed order. It is
described by four small tuples, one entry per grid axis:

- ``order``: the grid axes from the slowest- to the fastest-changing one. ``(0, 1)`` on an (H, W) grid is
  row-major, ``(1, 0)`` column-major.
- ``flips``: per grid axis, whether that axis is walked from its last index down to its first.
- ``start`` and ``step``: the sub-grid ``grid[start::step]`` along each axis (atrous routes use step 2).

Step ``t`` of a route therefore lands on one cell of the grid, and a scan kernel can compute that cell's
address from these integers alone; nothing is copied per route. A :class:`RouteSet` is an ordered tuple of
routes over grids with a fixed number of axes. The routes of a set may cover different cells (atrous
sub-grids partition the grid) or the same cells (cross scans visit every cell once per route).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "Route",
    "RouteSet",
    "bidir1d",
    "cross2d",
    "atrous2d",
    "cross3d",
    "time_route",
    "route_set",
]


def _as_tuple(values, ndim: int, name: str, default) -> tuple:
    if values is None:
        return (default,) * ndim
    values = tuple(values)
    if len(values) != ndim:
        raise ValueError(f"Route.{name} must have one entry per grid axis ({ndim}), got {values}")
    return values


@dataclass(frozen=True)
class Route:
    """One visiting order through a grid of ``len(order)`` axes (see the module docstring)."""

    order: tuple[int, ...]
    flips: tuple[bool, ...]
    start: tuple[int, ...]
    step: tuple[int, ...]

    def __init__(self, order: Sequence[int], flips=None, start=None, step=None):
        order = tuple(int(a) for a in order)
        ndim = len(order)
        if sorted(order) != list(range(ndim)):
            raise ValueError(f"Route.order must be a permutation of 0..{ndim - 1}, got {order}")
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "flips", tuple(bool(f) for f in _as_tuple(flips, ndim, "flips", False)))
        object.__setattr__(self, "start", tuple(int(s) for s in _as_tuple(start, ndim, "start", 0)))
        object.__setattr__(self, "step", tuple(int(s) for s in _as_tuple(step, ndim, "step", 1)))
        if any(s < 1 for s in self.step):
            raise ValueError(f"Route.step must be >= 1, got {self.step}")
        if any(s < 0 for s in self.start):
            raise ValueError(f"Route.start must be >= 0, got {self.start}")

    @property
    def ndim(self) -> int:
        return len(self.order)

    def subgrid_shape(self, grid: Sequence[int]) -> tuple[int, ...]:
        """Cells of the sub-grid along each axis, in grid-axis order (not visiting order)."""
        return tuple(max(0, -(-(n - s) // st)) for n, s, st in zip(grid, self.start, self.step))

    def length(self, grid: Sequence[int]) -> int:
        """Number of steps this route takes on a grid of the given shape."""
        out = 1
        for n in self.subgrid_shape(grid):
            out *= n
        return out

    def indices(self, grid: Sequence[int]) -> torch.Tensor:
        """Flat (row-major) grid index of every step, shape ``(length,)``, int64, on the CPU."""
        grid = tuple(int(n) for n in grid)
        if torch.compiler.is_compiling():  # the same indices from torch ops, which the compiler folds to constants
            return _route_indices_torch(self, grid)
        return torch.from_numpy(_route_indices(self, grid).copy())


def _route_indices_torch(route: Route, grid: tuple[int, ...]) -> torch.Tensor:
    if len(grid) != route.ndim:
        raise ValueError(f"route has {route.ndim} axes but the grid is {grid}")
    n = 1
    for g in grid:
        n *= g
    sub = torch.arange(n, dtype=torch.int64).reshape(grid)
    sub = sub[tuple(slice(s, None, st) for s, st in zip(route.start, route.step))]
    flip_axes = [a for a, f in enumerate(route.flips) if f]
    if flip_axes:
        sub = sub.flip(flip_axes)
    return sub.permute(route.order).reshape(-1)


@lru_cache(maxsize=512)
def _route_indices(route: Route, grid: tuple[int, ...]) -> np.ndarray:
    # Cached as numpy, not torch: a tensor cached while a tracer or fake-tensor mode is active (torch.export,
    # torch.compile) would leak that mode's tensors into later eager calls.
    if len(grid) != route.ndim:
        raise ValueError(f"route has {route.ndim} axes but the grid is {grid}")
    flat = np.arange(int(np.prod(grid)), dtype=np.int64).reshape(grid)
    sub = flat[tuple(slice(s, None, st) for s, st in zip(route.start, route.step))]
    flip_axes = [a for a, f in enumerate(route.flips) if f]
    if flip_axes:
        sub = np.flip(sub, flip_axes)
    return np.ascontiguousarray(sub.transpose(route.order).reshape(-1))


@dataclass(frozen=True)
class RouteSet:
    """An ordered set of routes over grids with ``ndim`` axes; ``name`` is for messages only."""

    routes: tuple[Route, ...]
    name: str = "custom"

    def __post_init__(self):
        if not self.routes:
            raise ValueError("a RouteSet needs at least one route")
        ndims = {r.ndim for r in self.routes}
        if len(ndims) != 1:
            raise ValueError(f"all routes of a set must have the same number of axes, got {sorted(ndims)}")

    @property
    def ndim(self) -> int:
        return self.routes[0].ndim

    def __len__(self) -> int:
        return len(self.routes)

    def __iter__(self):
        return iter(self.routes)

    def __getitem__(self, k: int) -> Route:
        return self.routes[k]

    def lengths(self, grid: Sequence[int]) -> list[int]:
        return [r.length(grid) for r in self.routes]

    def indices(self, grid: Sequence[int]) -> list[torch.Tensor]:
        return [r.indices(grid) for r in self.routes]

    def to_spec(self) -> list[int]:
        """The set as a flat list of ints: ``[K, ndim]``, then per route its order, flips (0/1), start and
        step, ``ndim`` ints each. Torch op schemas and TorchScript attributes hold this where they cannot hold
        a RouteSet; :meth:`from_spec` inverts it. ``name`` is not part of it (ints only)."""
        spec = [len(self.routes), self.ndim]
        for r in self.routes:
            spec += list(r.order) + [int(f) for f in r.flips] + list(r.start) + list(r.step)
        return spec

    @staticmethod
    def from_spec(spec: Sequence[int], name: str = "custom") -> "RouteSet":
        """The RouteSet whose :meth:`to_spec` is ``spec`` (a list or tuple of ints), named ``name``.

        Cached: scan ops and ``torch.jit.ignore`` methods call this on every forward."""
        return _routes_from_spec(tuple(int(v) for v in spec), name)

    def check_grid(self, grid: Sequence[int]) -> None:
        if len(grid) != self.ndim:
            raise ValueError(
                f"route set '{self.name}' scans {self.ndim}-D grids, but the feature map's grid is {tuple(grid)}"
            )
        empty = [k for k, n in enumerate(self.lengths(grid)) if n == 0]
        if empty:
            raise ValueError(
                f"route set '{self.name}' has routes {empty} that visit no cell of a grid of shape {tuple(grid)}"
            )


@lru_cache(maxsize=256)
def _routes_from_spec(spec: tuple[int, ...], name: str) -> RouteSet:
    if len(spec) < 2 or spec[0] < 1 or spec[1] < 1 or len(spec) != 2 + 4 * spec[0] * spec[1]:
        raise ValueError(f"not a RouteSet.to_spec() list: {list(spec)}")
    K, nd = spec[0], spec[1]
    routes, pos = [], 2
    for _ in range(K):
        order, flips, start, step = (spec[pos + i * nd: pos + (i + 1) * nd] for i in range(4))
        routes.append(Route(order, [bool(f) for f in flips], start, step))
        pos += 4 * nd
    return RouteSet(tuple(routes), name)


def route_set(spec: Sequence, name: str = "custom") -> RouteSet:
    """A route set from explicit descriptions: each item is a :class:`Route`, or a dict / tuple of
    ``(order, flips, start, step)`` as accepted by ``Route``."""
    routes = []
    for item in spec:
        if isinstance(item, Route):
            routes.append(item)
        elif isinstance(item, dict):
            routes.append(Route(**item))
        else:
            routes.append(Route(*item))
    return RouteSet(tuple(routes), name)


def bidir1d() -> RouteSet:
    """Two routes over a 1-D sequence of length L: forward ``0, 1, ..., L-1`` then backward ``L-1, ..., 0``
    (Vim's two directions)."""
    return RouteSet((Route((0,)), Route((0,), flips=(True,))), "bidir1d")


def cross2d() -> RouteSet:
    """Four routes over an (H, W) grid, in VMamba's order:

    0. row-major: ``(0,0), (0,1), ..., (0,W-1), (1,0), ...``
    1. column-major: ``(0,0), (1,0), ..., (H-1,0), (0,1), ...``
    2. route 0 reversed: ``(H-1,W-1), (H-1,W-2), ...``
    3. route 1 reversed: ``(H-1,W-1), (H-2,W-1), ...``
    """
    return RouteSet(
        (
            Route((0, 1)),
            Route((1, 0)),
            Route((0, 1), flips=(True, True)),
            Route((1, 0), flips=(True, True)),
        ),
        "cross2d",
    )


def atrous2d(step: int = 2) -> RouteSet:
    """EfficientVMamba's atrous (skip-sampled) routes on an (H, W) grid with ``step`` 2: the four sub-grids
    ``grid[i::2, j::2]``, each scanned forward (no flips), in the official ES2D order:

    0. offset (0,0), row-major
    1. offset (1,0), column-major
    2. offset (0,1), row-major
    3. offset (1,1), column-major

    Every cell of the grid is visited by exactly one route; on odd sides the sub-grids differ in size
    (the official code instead zero-pads odd sides to even and scans the padded cells too).
    """
    if step != 2:
        raise ValueError(f"atrous2d builds EfficientVMamba's four stride-2 routes; step must be 2, got {step}")
    return RouteSet(
        (
            Route((0, 1), start=(0, 0), step=(2, 2)),
            Route((1, 0), start=(1, 0), step=(2, 2)),
            Route((0, 1), start=(0, 1), step=(2, 2)),
            Route((1, 0), start=(1, 1), step=(2, 2)),
        ),
        "atrous2d",
    )


def cross3d() -> RouteSet:
    """Six routes over a (D, H, W) volume: each axis as the fastest-changing one, both ways.

    0. order (D, H, W): W fastest, forward          3. route 0 reversed
    1. order (D, W, H): H fastest, forward          4. route 1 reversed
    2. order (H, W, D): D fastest, forward          5. route 2 reversed
    """
    orders = ((0, 1, 2), (0, 2, 1), (1, 2, 0))
    forward = tuple(Route(o) for o in orders)
    backward = tuple(Route(o, flips=(True, True, True)) for o in orders)
    return RouteSet(forward + backward, "cross3d")


def time_route() -> RouteSet:
    """One route over a 1-D time axis: ``t = 0, 1, ..., T-1`` (ConvS5's recurrence)."""
    return RouteSet((Route((0,)),), "time")
