"""A Mamba mixer that scans a token grid along several routes with one routed selective scan.

Per route k the mixer has its own depthwise causal conv, x_proj, dt_proj, A and D (Vim's "bimamba v2" with the
two routes of :func:`~vssm.kernels.bidir1d`; SegMamba's three routes over a volume). The in_proj, the gate z and
out_proj are shared. Data flow for an input ``x`` of shape (batch, *grid, dim)::

    x, z = in_proj(x)                                   # (b, d_inner, *grid) each
    u_k = silu(conv_k(x) along route k)                 # per route, stored back in grid order
    dt_k, B_k, C_k = x_proj_k(u_k)                      # position-wise, so computed in grid order
    y = routed_selective_scan(u, dt_proj_k(dt_k), A, B, C, D, z, dt_bias)   # sum over routes, gated by silu(z)
    out = out_proj(y / K)                               # Vim divides the sum of its two routes by 2

Routes are data (:class:`~vssm.kernels.routes.RouteSet`); the routed scan reads every route in place, so the
mixer never builds a reversed copy of the sequence. Only the conv needs a route order: for the identity route it
is a causal conv of the flattened grid, for the reversed identity route it is the *anti-causal* conv with the
kernel mirrored (a conv on the reversed sequence equals this conv on the original one), and any other route
gathers its sequence for the conv alone and scatters the result back.

Parameters of all routes are stacked along a leading K axis, so x_proj / dt_proj for every route are one einsum.
"""


import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_module

from vssm.kernels import RouteSet, bidir1d, routed_selective_scan

__all__ = ["RoutedMambaMixer", "route_conv_mode", "route_depthwise_conv"]


def route_conv_mode(route) -> str:
    """How a route's causal conv is computed on the flattened grid: "causal" (the route is the row-major
    order), "anticausal" (the row-major order reversed) or "gather" (any other order)."""
    full = all(s == 0 for s in route.start) and all(s == 1 for s in route.step)
    identity = route.order == tuple(range(route.ndim))
    if full and identity and not any(route.flips):
        return "causal"
    if full and identity and all(route.flips):
        return "anticausal"
    return "gather"


def route_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], route,
                         grid: Sequence[int]) -> torch.Tensor:
    """Depthwise conv of ``x`` (b, d, n) that is causal along ``route``, returned in grid (row-major) order.

    ``weight`` is (d, k) with the tap for the current step last (PyTorch's causal-conv layout, as in mamba_ssm).
    """
    d, width = weight.shape
    mode = route_conv_mode(route)
    if mode == "causal":
        return F.conv1d(F.pad(x, (width - 1, 0)), weight.unsqueeze(1), bias, groups=d)
    if mode == "anticausal":
        # step t of the reversed route sees grid cells p, p+1, ..., p+width-1 with the current one weighted last
        return F.conv1d(F.pad(x, (0, width - 1)), weight.flip(-1).unsqueeze(1), bias, groups=d)
    index = route.indices(grid).to(x.device)
    seq = F.conv1d(F.pad(x[..., index], (width - 1, 0)), weight.unsqueeze(1), bias, groups=d)
    return torch.empty_like(seq).index_copy_(-1, index, seq)


def _routes_of(mixer) -> RouteSet:
    """The RouteSet of a mixer, from its flat-int ``route_spec`` (also present on a TorchScript copy)."""
    return RouteSet.from_spec(mixer.route_spec, mixer.route_set_name)


def _check_full_cover(routes: RouteSet) -> None:
    for k, r in enumerate(routes):
        if any(s != 0 for s in r.start) or any(s != 1 for s in r.step):
            raise ValueError(
                f"RoutedMambaMixer needs routes that visit every grid cell (start 0, step 1); route {k} of "
                f"'{routes.name}' has start={r.start}, step={r.step}")


@register_notrace_module  # the conv and scan take a RouteSet: a leaf for torch.fx
class RoutedMambaMixer(nn.Module):
    """Mamba mixer over a token grid, one selective scan along every route of ``routes`` (default: Vim's
    forward + backward routes over a sequence).

    Args:
        dim: channels of the input and output.
        routes: the route set; its number of grid axes fixes the input rank (b, *grid, dim).
        d_state, d_conv, expand, dt_rank: Mamba's sizes (``dt_rank="auto"`` is ``ceil(dim / 16)``).
        dt_min, dt_max, dt_init_floor, dt_scale: the range the initial step size softplus(dt_bias) is drawn from.
        dt_bias_init_routes: routes whose dt bias gets that initialisation; the others start at zero (Vim
            zeroes the backward route's dt bias: its generic bias re-initialisation spares only the forward one).
        conv_bias, bias: biases of the convs and of in_proj / out_proj.
        divide_by_routes: divide the sum of the routes' outputs by K before out_proj (Vim's ``if_divide_out``).
    """

    def __init__(
            self,
            dim: int,
            routes: Optional[RouteSet] = None,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank="auto",
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init_floor: float = 1e-4,
            dt_scale: float = 1.0,
            dt_bias_init_routes: Optional[Sequence[int]] = None,
            conv_bias: bool = True,
            bias: bool = False,
            divide_by_routes: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        routes = bidir1d() if routes is None else routes
        if not isinstance(routes, RouteSet):
            raise TypeError(f"routes must be a RouteSet, got {type(routes).__name__}")
        _check_full_cover(routes)
        if dt_rank != "auto" and (not isinstance(dt_rank, int) or dt_rank < 1):
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {dt_rank!r}")
        dd = dict(device=device, dtype=dtype)
        K = len(routes)
        self.routes = routes
        # the routes again as a flat int list: a TorchScript module keeps it (not the RouteSet), and the
        # Python-side conv / scan rebuild the RouteSet from it
        self.route_spec = routes.to_spec()
        self.route_set_name = routes.name
        self.num_routes = K
        self.grid_ndim = routes.ndim
        self.dim = dim
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = d_inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else dt_rank
        self.divide_by_routes = divide_by_routes
        self.dt_init = dict(dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor, dt_scale=dt_scale)
        self.dt_bias_init_routes = tuple(range(K)) if dt_bias_init_routes is None else tuple(dt_bias_init_routes)
        if any(not 0 <= k < K for k in self.dt_bias_init_routes):
            raise ValueError(f"dt_bias_init_routes {self.dt_bias_init_routes} must index the {K} routes")

        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=bias, **dd)
        self.conv_weight = nn.Parameter(torch.empty(K, d_inner, d_conv, **dd))
        self.conv_bias = nn.Parameter(torch.empty(K, d_inner, **dd)) if conv_bias else None
        self.x_proj_weight = nn.Parameter(torch.empty(K, self.dt_rank + 2 * d_state, d_inner, **dd))
        self.dt_proj_weight = nn.Parameter(torch.empty(K, d_inner, self.dt_rank, **dd))
        self.dt_proj_bias = nn.Parameter(torch.empty(K, d_inner, **dd))
        # A and D stay fp32 whatever the module dtype (they set the state decay; mamba_ssm keeps them fp32)
        self.A_log = nn.Parameter(torch.empty(K, d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(K, d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(d_inner, dim, bias=bias, **dd)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Mamba's initialisation; per route the same distributions as separate nn.Conv1d / nn.Linear layers."""
        if self.conv_weight.is_meta:
            return
        conv_bound = 1.0 / math.sqrt(self.d_conv)  # PyTorch default for a depthwise conv: fan_in = kernel size
        nn.init.uniform_(self.conv_weight, -conv_bound, conv_bound)
        if self.conv_bias is not None:
            nn.init.uniform_(self.conv_bias, -conv_bound, conv_bound)
        x_bound = 1.0 / math.sqrt(self.d_inner)
        nn.init.uniform_(self.x_proj_weight, -x_bound, x_bound)
        dt_std = self.dt_rank ** -0.5 * self.dt_init["dt_scale"]
        nn.init.uniform_(self.dt_proj_weight, -dt_std, dt_std)
        lo, hi = math.log(self.dt_init["dt_min"]), math.log(self.dt_init["dt_max"])
        dt = torch.exp(torch.rand(self.num_routes, self.d_inner, device=self.dt_proj_bias.device) * (hi - lo) + lo)
        dt = dt.clamp(min=self.dt_init["dt_init_floor"])
        inv_softplus = dt + torch.log(-torch.expm1(-dt))
        keep = torch.zeros(self.num_routes, 1, dtype=torch.bool, device=dt.device)
        keep[list(self.dt_bias_init_routes)] = True
        self.dt_proj_bias.copy_(torch.where(keep, inv_softplus, torch.zeros_like(inv_softplus)))
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=self.A_log.device)
        self.A_log.copy_(torch.log(A).expand_as(self.A_log))
        self.D.fill_(1.0)

    @torch.jit.ignore
    def route_inputs(self, x: torch.Tensor, shape: List[int]) -> torch.Tensor:
        """silu(conv_k(x)) for every route k, each in grid order: (b, d_inner, n) -> (b, K, d_inner, n)."""
        grid = tuple(shape[1:-1])
        outs = []
        for k, route in enumerate(_routes_of(self)):
            bias = None if self.conv_bias is None else self.conv_bias[k]
            outs.append(route_depthwise_conv(x, self.conv_weight[k], bias, route, grid))
        return F.silu(torch.stack(outs, dim=1))

    @torch.jit.ignore
    def _scan(self, u: torch.Tensor, delta: torch.Tensor, B: torch.Tensor, C: torch.Tensor, z: torch.Tensor,
              shape: List[int]) -> torch.Tensor:
        """The routed scan on (b, K, ., n) tensors viewed on the grid; returns (b, d_inner, n)."""
        grid = tuple(shape[1:-1])
        y = routed_selective_scan(
            u.reshape(u.shape[:3] + grid), delta.reshape(delta.shape[:3] + grid), -torch.exp(self.A_log.float()),
            B.reshape(B.shape[:3] + grid), C.reshape(C.shape[:3] + grid), self.D.float(),
            z=z.reshape(z.shape[:2] + grid), delta_bias=self.dt_proj_bias.float(), delta_softplus=True,
            routes=_routes_of(self))
        return y.reshape(u.shape[0], self.d_inner, -1)

    @torch.jit.ignore
    def _check_input(self, x: torch.Tensor) -> None:
        G = self.grid_ndim
        if x.dim() != G + 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"RoutedMambaMixer over {G}-D routes expects input (batch, *grid[{G}], {self.dim}), "
                f"got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, *grid, dim) with ``routes.ndim`` grid axes; returns the same shape."""
        self._check_input(x)
        shape = list(x.shape)
        batch, d, R, N = shape[0], self.d_inner, self.dt_rank, self.d_state
        xz = self.in_proj(x.reshape(batch, -1, self.dim)).transpose(1, 2)  # (b, 2*d_inner, n)
        xs, z = xz[:, :d], xz[:, d:]
        u = self.route_inputs(xs, shape)                                     # (b, K, d_inner, n)
        x_dbl = torch.einsum("bkdn,kcd->bkcn", u, self.x_proj_weight.to(u.dtype))
        dt, B, C = x_dbl[:, :, :R], x_dbl[:, :, R:R + N], x_dbl[:, :, R + N:]
        delta = torch.einsum("bkrn,kdr->bkdn", dt, self.dt_proj_weight.to(u.dtype))
        y = self._scan(u, delta, B, C, z, shape).transpose(1, 2)
        if self.divide_by_routes:
            y = y / self.num_routes
        return self.out_proj(y).reshape(shape)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"routes={self.routes.name} (K={self.num_routes})")
