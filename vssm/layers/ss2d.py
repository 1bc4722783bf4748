"""The 2-D selective-scan mixer (VMamba's SS2D) and its per-route SSM core, for any set of routes.

``SS2D`` is the token mixer of a VSS block::

    in_proj -> [split off the gate z] -> depthwise conv -> act -> RoutedSSM -> out_norm -> [* act(z)] -> out_proj

``RoutedSSM`` holds one set of SSM parameters per route (x_proj, dt_proj, A, D) and runs the scan along
every route of a :class:`~vssm.kernels.RouteSet` through the feature map where it lies. Because x_proj and
dt_proj are pointwise, each route's delta / B / C are computed once per map position, in the map's own
layout, and the scan kernel reads them along the route: nothing is copied per route. VMamba uses
``cross2d()`` (4 routes); other families pass their own route sets.
"""

import math
from typing import Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import register_notrace_module

from vssm.kernels import RouteSet, cross2d, routed_selective_scan
from vssm.kernels.flops import record_scan_flops, routed_scan_flops

from .linear import PointwiseLinear
from .norm import channel_norm

__all__ = ["RoutedSSM", "SS2D", "resolve_dt_rank", "route_dt_projection", "OUT_NORMS"]

OUT_NORMS = ("layernorm", "none")


def resolve_dt_rank(dt_rank: Union[int, str], dim: int) -> int:
    """``"auto"`` is Mamba's rule ceil(dim / 16), with ``dim`` the block width (not the inner width)."""
    if dt_rank == "auto":
        return math.ceil(dim / 16)
    if isinstance(dt_rank, bool) or not isinstance(dt_rank, int) or dt_rank < 1:
        raise ValueError(f"dt_rank must be a positive int or 'auto', got {dt_rank!r}")
    return dt_rank


def route_dt_projection(dts: torch.Tensor, weight: torch.Tensor, block_diagonal: Optional[bool] = None
                        ) -> torch.Tensor:
    """Each route's dt projection at every position: dts (..., K, R) and weight (K, d, R) give (..., K, d).

    On CUDA (or with ``block_diagonal=True``) it is one GEMM against the block-diagonal (K d, K R) weight
    instead of K small products: with R = 6 (VMamba-T's first stage) the per-route operands have 12-byte
    rows, which sends cuBLAS to a slow unaligned kernel (9 ms per weight gradient at batch 128 on an H100).
    The zero blocks add exact zeros, so the values are the same. Elsewhere (CPU, the meta device that
    counts FLOPs) the einsum is kept, so FLOP counts stay the per-route ones.
    """
    if block_diagonal is None:
        block_diagonal = dts.is_cuda
    if not block_diagonal:
        return torch.einsum("...kr,kdr->...kd", dts, weight)
    K, d, R = weight.shape
    # (K d, K R) with route k's weight on the diagonal block; built with an einsum against the identity so
    # that TorchScript can compile it (torch.block_diag takes a variable number of tensors)
    eye = torch.eye(K, dtype=weight.dtype, device=weight.device)
    block_diagonal_weight = torch.einsum("kdr,kj->kdjr", weight, eye).reshape(K * d, K * R)
    flat = dts.reshape(dts.shape[:-2] + (K * R,))
    return F.linear(flat, block_diagonal_weight).unflatten(-1, (K, d))


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """The SSM parameters in fp32 (as the reference keeps them), or fp64 for a model in fp64."""
    return t if t.dtype == torch.float64 else t.float()


@register_notrace_module  # the scan call takes a RouteSet and validates values: a leaf for torch.fx
class RoutedSSM(nn.Module):
    """Input-dependent SSM along every route of ``routes``, with separate parameters per route.

    For route k and a map x of width ``d_inner``: ``(dt, B, C) = x @ x_proj_weight[k].T`` split as
    (dt_rank, d_state, d_state), ``delta = softplus(dt @ dt_proj_weight[k].T + dt_proj_bias[k])``,
    ``A = -exp(A_log[k])``; the scan output of every route is summed back in place (with the ``D`` skip).

    Parameters (K = ``len(routes)``): ``x_proj_weight`` (K, dt_rank + 2 d_state, d_inner),
    ``dt_proj_weight`` (K, d_inner, dt_rank), ``dt_proj_bias`` (K, d_inner), ``A_log`` (K, d_inner, d_state),
    ``D`` (K, d_inner). Initialised as Mamba / VMamba do: S4D-real A, D = 1, dt_proj bias the inverse
    softplus of a log-uniform dt in [dt_min, dt_max] (floored at dt_init_floor).

    ``pad_to_multiple`` > 1 zero-pads the bottom / right of the map to a multiple of it before the scan and
    crops the output back: routes then also step through the padded cells (no input, but the state decays
    there). EfficientVMamba's reference pads odd sides to even this way before its atrous routes.
    ``skip_empty_routes=True`` lets a strided route that visits no cell of the map (an atrous route starting
    at row 1 on a map one row high) contribute nothing, instead of raising.
    """

    def __init__(self, d_inner: int, *, routes: Optional[RouteSet] = None, d_state: int = 16, dt_rank: int = 8,
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4, dt_scale: float = 1.0,
                 channels_last: bool = True, pad_to_multiple: int = 1, skip_empty_routes: bool = False,
                 device=None, dtype=None):
        super().__init__()
        routes = cross2d() if routes is None else routes
        if not isinstance(routes, RouteSet):
            raise TypeError(f"routes must be a vssm.kernels.RouteSet, got {type(routes).__name__}")
        if routes.ndim not in (2, 3):
            raise ValueError(f"RoutedSSM scans 2-D feature maps (or 3-D volumes); route set '{routes.name}' has "
                             f"{routes.ndim} axes")
        if routes.ndim == 3 and (not channels_last or pad_to_multiple > 1 or skip_empty_routes):
            raise ValueError("3-D routes (volumes) run channels-last, without pad_to_multiple or skip_empty_routes")
        if d_state < 1 or d_inner < 1:
            raise ValueError(f"d_state and d_inner must be >= 1, got d_state={d_state}, d_inner={d_inner}")
        if isinstance(pad_to_multiple, bool) or not isinstance(pad_to_multiple, int) or pad_to_multiple < 1:
            raise ValueError(f"pad_to_multiple must be a positive int, got {pad_to_multiple!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        dd = dict(device=device, dtype=dtype)
        K = len(routes)
        self.routes = routes
        # the routes again as a flat int list: a TorchScript copy keeps this (not the RouteSet); see _scan
        self.route_spec = routes.to_spec()
        self.route_set_name = routes.name
        self.num_routes = K
        self.volume = routes.ndim == 3  # decided here, not from x.dim(), so torch.fx can trace callers
        self.channels_last = channels_last
        self.pad_to_multiple = pad_to_multiple
        self.skip_empty_routes = skip_empty_routes
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.dt_min, self.dt_max, self.dt_init_floor, self.dt_scale = dt_min, dt_max, dt_init_floor, dt_scale
        self.x_proj_weight = nn.Parameter(torch.empty(K, dt_rank + 2 * d_state, d_inner, **dd))
        self.dt_proj_weight = nn.Parameter(torch.empty(K, d_inner, dt_rank, **dd))
        self.dt_proj_bias = nn.Parameter(torch.empty(K, d_inner, **dd))
        self.A_log = nn.Parameter(torch.empty(K, d_inner, d_state, **dd))
        self.D = nn.Parameter(torch.empty(K, d_inner, **dd))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # x_proj: nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        bound = self.d_inner ** -0.5
        self.x_proj_weight.uniform_(-bound, bound)
        dt_std = self.dt_rank ** -0.5 * self.dt_scale
        self.dt_proj_weight.uniform_(-dt_std, dt_std)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = torch.exp(torch.rand_like(self.dt_proj_bias, dtype=torch.float32) * (hi - lo) + lo)
        dt = dt.clamp(min=self.dt_init_floor)
        self.dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=self.A_log.device)
        self.A_log.copy_(torch.log(A).expand_as(self.A_log))
        self.D.fill_(1.0)

    def project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-route (delta before softplus and bias, B, C) at every position of ``x``.

        channels-last x (b, H, W, d) gives delta (b, K, H, W, d) and B, C (b, K, H, W, N);
        channels-first x (b, d, H, W) gives delta (b, K, d, H, W) and B, C (b, K, N, H, W);
        a channels-last volume (b, D, H, W, d) under 3-D routes gives (b, K, D, H, W, d) and (b, K, D, H, W, N).
        """
        K, R, N = self.x_proj_weight.shape[0], self.dt_rank, self.d_state
        w = self.x_proj_weight.reshape(-1, self.d_inner)  # (K * (R + 2N), d)
        if self.channels_last and self.volume:  # a volume (b, D, H, W, d); decided at construction (torch.fx) under 3-D routes
            x_dbl = F.linear(x, w).reshape(x.shape[:4] + (K, R + 2 * N))
            dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=-1)
            delta = route_dt_projection(dts, self.dt_proj_weight).permute(0, 4, 1, 2, 3, 5)
            return delta, Bs.permute(0, 4, 1, 2, 3, 5), Cs.permute(0, 4, 1, 2, 3, 5)
        if self.channels_last:
            b, H, W = x.shape[0], x.shape[1], x.shape[2]
            x_dbl = F.linear(x, w).reshape(b, H, W, K, R + 2 * N)
            dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=-1)
            delta = route_dt_projection(dts, self.dt_proj_weight).permute(0, 3, 1, 2, 4)
            return delta, Bs.permute(0, 3, 1, 2, 4), Cs.permute(0, 3, 1, 2, 4)
        b, H, W = x.shape[0], x.shape[2], x.shape[3]
        x_dbl = F.conv2d(x, w[:, :, None, None]).reshape(b, K, R + 2 * N, H, W)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        delta = torch.einsum("bkrhw,kdr->bkdhw", dts, self.dt_proj_weight)
        return delta, Bs, Cs

    @torch.jit.ignore
    def _scan(self, x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
              D: torch.Tensor, delta_bias: torch.Tensor) -> torch.Tensor:
        routes = RouteSet.from_spec(self.route_spec, self.route_set_name)
        if x.device.type == "meta":
            # shapes only (timm builds and runs models on the meta device to check their structure; FLOP
            # counts run there too): the output has x's shape and dtype, and the scan's FLOPs are tallied as
            # the scan op does, while running the reference scan op by op on meta tensors would take seconds
            grid = tuple(x.shape[1:-1]) if self.channels_last else tuple(x.shape[2:])
            record_scan_flops(routed_scan_flops(x.shape[0], self.d_inner, routes.lengths(grid), self.d_state,
                                                with_D=True, grid_cells=math.prod(grid)))
            return torch.empty_like(x)
        if self.skip_empty_routes:
            grid = (x.shape[1], x.shape[2]) if self.channels_last else (x.shape[2], x.shape[3])
            keep = [k for k, n in enumerate(routes.lengths(grid)) if n > 0]
            if len(keep) < len(routes):
                routes = RouteSet(tuple(routes[k] for k in keep), routes.name)
                delta, B, C = delta[:, keep], B[:, keep], C[:, keep]  # the route axis is 1 in both layouts
                A, D, delta_bias = A[keep], D[keep], delta_bias[keep]
        return routed_selective_scan(x, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=True,
                                     routes=routes, channels_last=self.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, H, W, d_inner) if channels_last else (b, d_inner, H, W); returns the same shape and dtype."""
        H, W = (x.shape[1], x.shape[2]) if self.channels_last else (x.shape[2], x.shape[3])
        if self.pad_to_multiple > 1:
            m = self.pad_to_multiple
            pad_h, pad_w = (m - H % m) % m, (m - W % m) % m
            x = F.pad(x, [0, 0, 0, pad_w, 0, pad_h] if self.channels_last else [0, pad_w, 0, pad_h])
        delta, B, C = self.project(x)
        A = -torch.exp(_at_least_fp32(self.A_log))
        y = self._scan(x, delta, A, B, C, _at_least_fp32(self.D), _at_least_fp32(self.dt_proj_bias))
        if self.pad_to_multiple > 1:
            y = y[:, :H, :W] if self.channels_last else y[:, :, :H, :W]
        return y

    def extra_repr(self) -> str:
        return (f"d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"routes={self.routes.name}({self.num_routes}), channels_last={self.channels_last}"
                + (f", pad_to_multiple={self.pad_to_multiple}" if self.pad_to_multiple > 1 else ""))


class SS2D(nn.Module):
    """VMamba's 2-D selective-scan token mixer (input and output width ``dim``).

    Args:
        dim: block width.
        routes: scan routes (default ``cross2d()``: row-major, column-major and both reversed). 3-D route
            sets (e.g. ``cross3d()``) make it a volume mixer on channels-last (B, D, H, W, C) maps.
        d_state: SSM state size N.  ssm_ratio: inner width = int(ssm_ratio * dim).
        dt_rank: low rank of the dt projection, or "auto" = ceil(dim / 16).
        act_layer: activation after the depthwise conv (and on the gate).
        conv_size: depthwise conv kernel size; 0 or 1 for no conv.  conv_bias: bias in that conv.
        gate: multiply the output by act(z), z a second half of in_proj (VMamba v0); False drops z (v2).
        out_norm: "layernorm" over channels on the scan output, or "none".
        bias: bias in in_proj / out_proj.  dropout: after out_proj.
        dt_min, dt_max, dt_init_floor, dt_scale: dt initialisation (see ``RoutedSSM``).
        channels_last: the layout of input and output, (B, H, W, C) if True else (B, C, H, W).
        pad_to_multiple: zero-pad the map to a multiple of this before the scan (see ``RoutedSSM``).
        skip_empty_routes: routes that visit no cell of a map add nothing instead of raising (``RoutedSSM``).
    """

    def __init__(self, dim: int, *, routes: Optional[RouteSet] = None, d_state: int = 16, ssm_ratio: float = 2.0,
                 dt_rank: Union[int, str] = "auto", act_layer: Type[nn.Module] = nn.SiLU, conv_size: int = 3,
                 conv_bias: bool = True, gate: bool = True, out_norm: str = "layernorm", bias: bool = False,
                 dropout: float = 0.0, dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 dt_scale: float = 1.0, norm_eps: float = 1e-5, channels_last: bool = True,
                 pad_to_multiple: int = 1, skip_empty_routes: bool = False, device=None, dtype=None):
        super().__init__()
        if out_norm not in OUT_NORMS:
            raise ValueError(f"out_norm must be one of {OUT_NORMS}, got {out_norm!r}")
        if conv_size < 0:
            raise ValueError(f"conv_size must be >= 0 (0 or 1: no conv), got {conv_size}")
        d_inner = int(ssm_ratio * dim)
        if d_inner < 1:
            raise ValueError(f"ssm_ratio * dim must be >= 1, got ssm_ratio={ssm_ratio}, dim={dim}")
        dd = dict(device=device, dtype=dtype)
        self.dim, self.d_inner, self.gate, self.channels_last = dim, d_inner, gate, channels_last
        self.in_proj = PointwiseLinear(dim, 2 * d_inner if gate else d_inner, bias=bias,
                                       channels_last=channels_last, **dd)
        self.act = act_layer()
        # 3-D routes (e.g. cross3d) make this a volume mixer: the depthwise conv becomes a Conv3d
        self.volume = routes is not None and routes.ndim == 3
        conv_cls = nn.Conv3d if self.volume else nn.Conv2d
        self.conv = (conv_cls(d_inner, d_inner, conv_size, padding=(conv_size - 1) // 2, groups=d_inner,
                              bias=conv_bias, **dd) if conv_size > 1 else None)
        self.ssm = RoutedSSM(d_inner, routes=routes, d_state=d_state, dt_rank=resolve_dt_rank(dt_rank, dim),
                             dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor, dt_scale=dt_scale,
                             channels_last=channels_last, pad_to_multiple=pad_to_multiple,
                             skip_empty_routes=skip_empty_routes, **dd)
        self.out_norm = (channel_norm(d_inner, channels_last=channels_last, eps=norm_eps, **dd)
                         if out_norm == "layernorm" else nn.Identity())
        self.out_proj = PointwiseLinear(d_inner, dim, bias=bias, channels_last=channels_last, **dd)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _depthwise_conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return x
        if self.channels_last and self.volume:  # a volume (b, D, H, W, d); decided at construction (torch.fx)
            return self.conv(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        if self.channels_last:  # the permuted view is a channels_last-strided NCHW tensor: no copy
            return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_proj(x)
        z = x
        if self.gate:
            x, z = x.chunk(2, dim=-1 if self.channels_last else 1)
            z = self.act(z)
        x = self.act(self._depthwise_conv(x))
        y = self.out_norm(self.ssm(x))
        if self.gate:
            y = y * z
        return self.dropout(self.out_proj(y))
