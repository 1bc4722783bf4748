"""MSVMamba's multi-scale 2-D selective scan mixer (MS2D) on channels-last maps.

The mixer scans the feature map at two resolutions with separate SSM parameters:

- the *fine* grid, the full-resolution map after a 3x3 depthwise conv, along ``routes`` (released models:
  one route, row-major), as one routed scan;
- the *coarse* grid, the map after a 7x7 depthwise conv of stride 2 (ceil(side / 2)), along
  ``coarse_routes`` (released models: row-major reversed, column-major, column-major reversed).

The coarse routes are *chained*: the official model scans the three coarse sequences one after the other as a
single sequence with one set of parameters, so the state at the end of one route flows into the start of the
next. A route set of independent routes cannot express that, so ``ChainedRoutedSSM`` gathers the chained
sequence (from the route data, :meth:`Route.indices`) and runs it as one route of a 1-D grid. The official
code layer-normalises every step of the chain *before* the coarse routes are summed back onto the grid; the
fine branch is normalised after its (single) route. The coarse sum is brought to the fine grid by bilinear
interpolation (align_corners=False), the two are added, passed through channel attention, gated by
``silu(z)`` and projected out.

Data flow for ``x`` (b, h, w, dim)::

    x, z = in_proj(x);  z = silu(z)
    fine = silu(conv3x3(x));  coarse = silu(conv7x7_stride2(x))
    y = out_norm(scan(fine, routes)) + upsample(sum_k out_norm(chained_scan(coarse, coarse_routes))_k)
    out = out_proj(channel_attention(y) * z)
"""

# no ``from __future__ import annotations``: TorchScript reads the annotations of @torch.jit.ignore'd methods
from typing import Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import register_notrace_module

from vssm.kernels import RouteSet, cross2d, routed_selective_scan, time_route

from .channel_attention import ChannelAttention
from .linear import PointwiseLinear
from .norm import channel_norm
from .ss2d import RoutedSSM, resolve_dt_rank

__all__ = ["MultiScaleSS2D", "ChainedRoutedSSM", "ms2d_fine_routes", "ms2d_coarse_routes"]


def ms2d_fine_routes() -> RouteSet:
    """The released models' full-resolution route: row-major (VMamba's cross-scan route 0)."""
    return RouteSet((cross2d()[0],), "ms2d_fine")


def ms2d_coarse_routes() -> RouteSet:
    """The released models' chained coarse routes: row-major reversed, column-major, column-major reversed
    (VMamba's cross-scan routes 2, 1, 3, in that order)."""
    c = cross2d()
    return RouteSet((c[2], c[1], c[3]), "ms2d_coarse")


def _chain_index(routes: RouteSet, grid: Tuple[int, int]) -> torch.Tensor:
    """Flat grid index of every step of ``routes`` visited one after the other (CPU, int64). Not cached here:
    a tensor cached while an exporter traces (fake tensors) would leak into later eager calls."""
    return torch.cat([r.indices(grid) for r in routes])


@register_notrace_module  # gathers by route indices computed from the map's shape: a leaf for torch.fx
class ChainedRoutedSSM(RoutedSSM):
    """ONE set of SSM parameters scanning all routes of ``routes`` as one chained sequence: the state at the
    end of route k flows into the first step of route k + 1 (MSVMamba's coarse branch).

    Channels-first input x (b, d_inner, H, W). ``forward`` returns every step's output in visiting order,
    (b, d_inner, steps), and the flat grid index of each step (steps,), so the caller can normalise per step
    before merging the routes back onto the grid.
    """

    def __init__(self, d_inner: int, *, routes: RouteSet, **kwargs):
        if not isinstance(routes, RouteSet):
            raise TypeError(f"routes must be a vssm.kernels.RouteSet, got {type(routes).__name__}")
        # one parameter set: build the parent over the first route only, then keep the whole chain
        super().__init__(d_inner, routes=RouteSet(routes.routes[:1], routes.name), channels_last=False, **kwargs)
        self.routes = routes
        # the chain as a flat int list: a TorchScript copy of the module keeps this (not the RouteSet)
        self.chain_spec = routes.to_spec()
        self.chain_name = routes.name

    @torch.jit.ignore
    def _chained_scan(self, x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                      D: torch.Tensor, delta_bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        index = _chain_index(RouteSet.from_spec(self.chain_spec, self.chain_name), (x.shape[2], x.shape[3]))
        index = index.to(x.device)
        if x.device.type == "meta":  # shapes only (timm's meta-device checks): skip the op-by-op reference scan
            return x.new_empty(x.shape[:2] + index.shape), index

        def seq(t):  # (..., H, W) -> (..., steps) along the chain
            return t.flatten(-2)[..., index]

        y = routed_selective_scan(seq(x), seq(delta), A, seq(B), seq(C), D, delta_bias=delta_bias,
                                  delta_softplus=True, routes=time_route())
        return y, index

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        delta, B, C = self.project(x)
        A = -torch.exp(self.A_log.float())
        return self._chained_scan(x, delta, A, B, C, self.D.float(), self.dt_proj_bias.float())

    def extra_repr(self) -> str:
        return (f"d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"routes={self.routes.name}({len(self.routes)}, chained, one parameter set)")


class MultiScaleSS2D(nn.Module):
    """MSVMamba's SS2D with a multi-scale scan (see the module docstring), on (B, H, W, C) maps.

    Args:
        dim: block width.
        routes: routes on the full-resolution grid (one parameter set each, outputs summed).
        coarse_routes: chained routes on the coarse grid (one shared parameter set).
        d_state, ssm_ratio, dt_rank: SSM state size, inner width ``int(ssm_ratio * dim)``, rank of the step
            projection (``"auto"``: ``ceil(dim / 16)``).
        act_layer: activation after the convs and on the gate.
        conv_size, coarse_conv_size, coarse_stride: the depthwise convs feeding the two grids.
        channel_attention: squeeze-and-excitation on the merged output (reduction 8, no biases).
        dt_min, dt_max, dt_init_floor, dt_scale: dt initialisation (see ``RoutedSSM``).
        channels_last: must be True (the layout of the VSS block this mixer sits in).
    """

    def __init__(self, dim: int, *, routes: Optional[RouteSet] = None, coarse_routes: Optional[RouteSet] = None,
                 d_state: int = 1, ssm_ratio: float = 2.0, dt_rank: Union[int, str] = "auto",
                 act_layer: Type[nn.Module] = nn.SiLU, conv_size: int = 3, coarse_conv_size: int = 7,
                 coarse_stride: int = 2, conv_bias: bool = True, channel_attention: bool = True,
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4, dt_scale: float = 1.0,
                 norm_eps: float = 1e-5, channels_last: bool = True, device=None, dtype=None):
        super().__init__()
        if not channels_last:
            raise ValueError("MultiScaleSS2D runs on channels-last (B, H, W, C) maps; got channels_last=False")
        for name, size in (("conv_size", conv_size), ("coarse_conv_size", coarse_conv_size)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"MultiScaleSS2D.{name} must be a positive odd kernel size, got {size}")
        d_inner = int(ssm_ratio * dim)
        if d_inner < 1:
            raise ValueError(f"ssm_ratio * dim must be >= 1, got ssm_ratio={ssm_ratio}, dim={dim}")
        dd = dict(device=device, dtype=dtype)
        ssm_kwargs = dict(d_state=d_state, dt_rank=resolve_dt_rank(dt_rank, dim), dt_min=dt_min, dt_max=dt_max,
                          dt_init_floor=dt_init_floor, dt_scale=dt_scale, **dd)
        self.dim, self.d_inner = dim, d_inner
        self.in_proj = PointwiseLinear(dim, 2 * d_inner, bias=False, **dd)
        self.act = act_layer()
        self.conv = nn.Conv2d(d_inner, d_inner, conv_size, padding=conv_size // 2, groups=d_inner,
                              bias=conv_bias, **dd)
        self.conv_coarse = nn.Conv2d(d_inner, d_inner, coarse_conv_size, stride=coarse_stride,
                                     padding=coarse_conv_size // 2, groups=d_inner, bias=conv_bias, **dd)
        self.ssm = RoutedSSM(d_inner, routes=ms2d_fine_routes() if routes is None else routes,
                             channels_last=False, **ssm_kwargs)
        self.ssm_coarse = ChainedRoutedSSM(
            d_inner, routes=ms2d_coarse_routes() if coarse_routes is None else coarse_routes, **ssm_kwargs)
        self.out_norm = channel_norm(d_inner, channels_last=True, eps=norm_eps, **dd)
        self.se = (ChannelAttention(d_inner, 0.125, nn.ReLU, bias=False, **dd) if channel_attention
                   else nn.Identity())
        self.out_proj = PointwiseLinear(d_inner, dim, bias=False, **dd)

    def _coarse_branch(self, x: torch.Tensor) -> torch.Tensor:
        """(b, d, hc, wc) coarse map -> sum over the chained routes of out_norm(step output), (b, d, hc, wc)."""
        b, d, hc, wc = x.shape
        y, index = self.ssm_coarse(x)
        y = self.out_norm(y.transpose(1, 2))                                    # (b, steps, d)
        merged = y.new_zeros(b, hc * wc, d).index_add(1, index, y)
        return merged.transpose(1, 2).reshape(b, d, hc, wc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, h, w, dim) -> (b, h, w, dim)."""
        h, w = x.shape[1], x.shape[2]
        x, z = self.in_proj(x).chunk(2, dim=-1)
        z = self.act(z)
        x = x.permute(0, 3, 1, 2)
        y_fine = self.out_norm(self.ssm(self.act(self.conv(x))).permute(0, 2, 3, 1))
        y_coarse = self._coarse_branch(self.act(self.conv_coarse(x)))
        y_coarse = F.interpolate(y_coarse, size=(h, w), mode="bilinear", align_corners=False)
        y = y_fine + y_coarse.permute(0, 2, 3, 1)
        return self.out_proj(self.se(y) * z)
