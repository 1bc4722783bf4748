"""A RouteSet as plain lists, so that modules holding one survive ``torch.jit.script``.

A scripted copy of a module keeps attributes of TorchScript types only (a ``RouteSet`` is dropped), while
the scan itself runs in Python (a ``torch.jit.ignore`` method). Modules store ``route_spec(routes)`` and
rebuild the set in that method with ``routes_from_spec`` (cached, so it costs nothing per call).
"""

from functools import lru_cache
from typing import List, Sequence, Tuple

from vssm.kernels import Route, RouteSet

__all__ = ["route_spec", "routes_from_spec"]

RouteSpec = List[Tuple[List[int], List[bool], List[int], List[int]]]


def route_spec(routes: RouteSet) -> RouteSpec:
    """(order, flips, start, step) of every route, as lists."""
    return [(list(r.order), list(r.flips), list(r.start), list(r.step)) for r in routes]


@lru_cache(maxsize=256)
def _cached(spec: tuple, name: str) -> RouteSet:
    return RouteSet(tuple(Route(*r) for r in spec), name)


def routes_from_spec(spec: Sequence, name: str) -> RouteSet:
    """The RouteSet described by ``route_spec`` output (lists or tuples)."""
    return _cached(tuple(tuple(tuple(part) for part in r) for r in spec), name)
