"""Launchers: turn the public tensors (any strides) into kernel arguments, run the kernels, finish the sums.

Shapes are the channels-first routed ones of ``vssm.kernels.routed_selective_scan`` (u/delta shared or per
route, B/C plain or grouped). Nothing here copies u, delta, B, C or z: their strides go to the kernels.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ..routes import RouteSet, _route_indices
from .routing import MAX_AXES, route_plan

__all__ = ["kernel_names", "seq_bwd_layout", "tile_config", "scan_forward", "scan_backward"]

_TABLE_CACHE: dict = {}


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def kernel_names(N: int, batch: int, groups: int, gsize: int, device: torch.device) -> tuple[str, str]:
    """(forward, backward) kernel for a call. Forward: "nloop" (2-D tiles, states one at a time; N <= 4),
    "seq" (a channel's states in one thread, steps in turn) or "tile3d" (3-D tiles); backward: "seq" or
    "tile3d". ``VSSM_SCAN_FWD_KERNEL`` / ``VSSM_SCAN_BWD_KERNEL`` override (benchmarks compare them).

    The in-thread kernels win when each thread has enough states to work on, until the states no longer fit
    its registers, and when there are enough (batch x channel) warps to keep the GPU busy (H100, 2026-11-23,
    notes/kernels.md): Vim L197 N = 16 forward 1.25 -> 0.35 ms, forward+backward 6.2 -> 4.3 ms (1,536 warps);
    56x56 N = 16 fwd+bwd 87 -> 51 ms (768 warps); at N = 1 they are 2-3x slower. With few warps (the 3-D
    medical maps at batch 2, say) the tiled kernels put 4 warps on each channel block instead of one; the
    threshold of 2 warps per SM is an untimed guess between the measured cases and those. On CPU (the
    interpreter) only N decides, so the tests run what a busy GPU runs."""
    in_thread = 4 < N <= 16
    if device.type == "cuda":
        warps = batch * groups * -(-gsize // 32)
        in_thread = in_thread and warps >= 2 * torch.cuda.get_device_properties(device).multi_processor_count
    fwd = os.environ.get("VSSM_SCAN_FWD_KERNEL") or ("nloop" if N <= 4 else "seq" if in_thread else "tile3d")
    bwd = os.environ.get("VSSM_SCAN_BWD_KERNEL") or ("seq" if in_thread else "tile3d")
    return fwd, bwd


def seq_bwd_layout(block_n: int, lanes: int, programs: int, sms: int | None) -> tuple[int, int | None]:
    """(lanes per channel, ``maxnreg``) of the seq backward, for a grid of ``programs`` one-warp programs of
    ``lanes`` channels each (one lane per channel) on ``sms`` SMs (None: the interpreter).

    Uncapped, the kernel's ~250 registers per thread fit 8 programs per SM. Where that grid needs two waves
    but 12 programs per SM would take it in one (8 x SMs < programs <= 12 x SMs), the registers are capped at
    168, and the channel's states are shared by two lanes (each every other state, twice the programs of half
    the work), which brings the kernel near 168 registers without spilling (Triton 3.8: 229 -> 167 registers,
    no spills; one lane per channel capped at 168 spills). Elsewhere neither: both cost where the grid fits in
    one wave anyway. Measured on the H100 (2026-11-23, notes/kernels.md, fourth round), fwd+bwd ms:

    | stage (programs) | 1 lane | 1 lane, cap 168 | 2 lanes | 2 lanes, cap 168 |
    |---|---|---|---|---|
    | Vim L197 N16 (1,536) | 4.09 | 3.79 | 3.71 | 3.68 |
    | Vim L730 N16 (1,536) | 14.67 | 13.51 | 13.34 | 13.29 |
    | VMamba 56x56 N16 (768) | 45.8 | 65.5 | 65.5 | 52.6 |

    Two lanes need a half of the states per lane to fit the lanes' reduce-scatter (block_n <= lanes).
    ``VSSM_SCAN_BWD_SPLIT`` (1 or 2) and ``VSSM_SCAN_BWD_MAXNREG`` (0: no cap) override."""
    two_waves_to_one = sms is not None and 8 * sms < programs <= 12 * sms
    split = int(os.environ.get("VSSM_SCAN_BWD_SPLIT", "2" if two_waves_to_one else "1"))
    if split not in (1, 2):
        raise ValueError(f"VSSM_SCAN_BWD_SPLIT must be 1 or 2, got {split}")
    split = 2 if split == 2 and 2 <= block_n <= lanes else 1
    cap = os.environ.get("VSSM_SCAN_BWD_MAXNREG")
    cap = (int(cap) or None) if cap is not None else (168 if two_waves_to_one else None)
    return split, cap


def tile_config(N: int, gsize: int, max_len: int, names: tuple[str, str], kernel: str = "fwd") -> tuple[int, int, int]:
    """(BLOCK_L, BLOCK_D, num_warps) of the forward or backward kernel (``names`` from ``kernel_names``) for a
    state size, a group size and the longest route. BLOCK_L is shared (the backward pass restarts from states
    the forward pass saved every BLOCK_L steps); the channel block and warps are each kernel's own.

    From H100 sweeps at 56x56, batch 128 (notes/kernels.md, 2026-11-23): the 2-D "nloop" forward on 16 x 32
    tiles with 4 warps (fwd+bwd 10.7 ms against 11.4 ms for the 3-D kernel at N = 1); the 3-D forward on
    16 x 16 x N tiles; the in-thread "seq" kernels one warp of 32 channels per program. The tiled backward
    keeps a 3-D BLOCK_L x BLOCK_D x BLOCK_N tile of 2048 (N <= 4) or 4096 elements. Overrides:
    ``VSSM_SCAN_TILE="L,D,warps"`` (forward), ``VSSM_SCAN_BWD_TILE="D,warps"`` (backward).
    """
    fwd_name, bwd_name = names
    bn = _next_pow2(N)
    fwd_override = os.environ.get("VSSM_SCAN_TILE")
    if fwd_override:
        bl, bd, warps = (int(v) for v in fwd_override.split(","))
    elif fwd_name == "nloop":
        bl, bd, warps = 16, 32, 4
    else:
        bd = 32 if bn <= 4 else (16 if bn <= 16 else 8)
        bl = max(8, min(128, (2048 if bn <= 4 else 4096) // (bd * bn)))
        warps = 4
        if fwd_name == "seq":  # one channel per thread; BLOCK_L only spaces the saved states
            bd, warps = 32, 1
    bl = min(bl, _next_pow2(max_len))
    if kernel == "bwd":
        bwd_override = os.environ.get("VSSM_SCAN_BWD_TILE")
        if bwd_override:
            bd, warps = (int(v) for v in bwd_override.split(","))
        elif bwd_name == "seq":
            bd, warps = 32, 1
        else:
            bd = max(1, min(32, (2048 if bn <= 4 else 4096) // (bl * bn)))
            warps = 4
    bd = min(bd, _next_pow2(gsize))
    return bl, bd, warps


def _grid_strides(x: torch.Tensor, G: int) -> list[int]:
    return list(x.stride()[x.dim() - G:]) + [0] * (MAX_AXES - G)


def _map_strides(x: torch.Tensor, G: int, per_route: bool, cells: bool = False) -> list[int]:
    """(batch, route, channel, grid0, grid1, grid2) strides of a (b, [K], d, *grid) tensor."""
    s = x.stride()
    return [s[0], s[1] if per_route else 0, s[-G - 1]] + _cell_strides(x, G, cells)


def _bc_view(x: torch.Tensor, G: int) -> torch.Tensor:
    """B/C as (b, K, groups, N, *grid)."""
    return x.unsqueeze(2) if x.dim() == G + 3 else x


def _grid_linear(x: torch.Tensor, G: int) -> bool:
    """True if x's grid axes are laid out row-major (offset = linear cell index x stride of the last axis),
    as both channels-first and channels-last maps are."""
    if x is None:
        return True
    sizes, strides = x.shape[x.dim() - G:], x.stride()[x.dim() - G:]
    return all(sizes[j] == 1 or strides[j] == strides[j + 1] * sizes[j + 1] for j in range(G - 1))


def _cell_strides(x: torch.Tensor, G: int, cells: bool) -> list[int]:
    """Grid strides for the kernels: per axis, or (0, 0, stride per cell) when addressing by cell index."""
    if cells:
        return [0] * (MAX_AXES - 1) + [x.stride(-1)]
    return _grid_strides(x, G)


def _cell_table(routes: RouteSet, grid: tuple, device: torch.device):
    """(K, lmax) int32 linear cell index of every step of every route (cached per device)."""
    key = ("cells", routes, grid, str(device))
    table = _TABLE_CACHE.get(key)
    if table is None:
        idx = [_route_indices(r, grid) for r in routes]
        lmax = max(len(i) for i in idx)
        rows = torch.zeros(len(idx), lmax, dtype=torch.int32)
        for k, i in enumerate(idx):
            rows[k, :len(i)] = torch.from_numpy(i.astype("int32"))
        table = rows.to(device)
        if len(_TABLE_CACHE) > 256:
            _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = table
    return table


def _device_table(routes: RouteSet, grid: tuple, device: torch.device):
    plan = route_plan(routes, grid)
    key = (routes, grid, str(device))
    table = _TABLE_CACHE.get(key)
    if table is None:
        table = torch.tensor(plan.table_rows(), dtype=torch.int32).to(device)
        if len(_TABLE_CACHE) > 256:
            _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = table
    return plan, table


_INT32_MAX = 2 ** 31 - 1


def _check_offsets_fit(*tensors):
    """The kernels address inside one batch element with 32-bit offsets (fewer registers, more programs in
    flight per SM); a single batch element spanning 2**31 elements or more is refused by name."""
    for t in tensors:
        if t is None or t.dim() < 2:
            continue
        span = sum((n - 1) * abs(st) for n, st in zip(t.shape[1:], t.stride()[1:]))
        if span > _INT32_MAX:
            raise ValueError(f"a tensor of shape {tuple(t.shape)} spans {span + 1} elements per batch element; "
                             f"the Triton scan addresses at most 2**31 per batch element: split the batch's maps")


def state_vector_alignment(*views: tuple[torch.Tensor, list[int]], block_n: int, n: int) -> int:
    """How many states of B / C the in-thread kernels may load as one vector (1, 2, 4 or 8 elements, up to 16
    bytes): the largest power of two that divides every offset the kernels form (pointer, batch / route / group
    strides and the grid strides they use), given unit state stride and N == BLOCK_N. Each ``view`` is
    (tensor, its strides as passed). The kernels pass it to ``tl.multiple_of``: Triton cannot know that a
    per-cell stride of 56 (Vim's x_proj rows) keeps 16-byte alignment, and loads 16 states one by one
    without the hint. ``VSSM_SCAN_BC_VECTOR=0`` turns the vector loads off (benchmarks compare)."""
    if n != block_n or os.environ.get("VSSM_SCAN_BC_VECTOR", "1") == "0":
        return 1
    align = block_n
    for x, strides in views:
        size = x.element_size()
        align = min(align, 16 // size)
        state_stride, others = strides[3], strides[:3] + strides[4:]
        if state_stride != 1:
            return 1
        for v in [x.data_ptr() // size if x.data_ptr() % size == 0 else 1] + others:
            while align > 1 and v % align:
                align //= 2
    return align


def _geometry(u, A, B, routes):
    G = routes.ndim
    grid = tuple(int(n) for n in u.shape[-G:])
    K, dim, N = A.shape
    Bv = _bc_view(B, G)
    groups = Bv.shape[2]
    gsize = dim // groups
    return G, grid, K, dim, N, groups, gsize


def _launch_forward(grid_dims, routes, grid, kernel_name, *args, **meta):
    if kernel_name == "tile3d":
        from .fwd import routed_scan_fwd_kernel as kernel
    elif kernel_name == "seq":
        from .fwd_seq import routed_scan_fwd_seq_kernel as kernel
    else:
        from .fwd_nloop import routed_scan_fwd_nloop_kernel as kernel

    _, table = _device_table(routes, grid, args[0].device)
    cells = _cell_table(routes, grid, args[0].device)
    args = args[:12] + (table, cells) + args[12:]
    kernel[grid_dims](*args, **meta)


def scan_forward(u, delta, A, B, C, D, z, delta_bias, softplus, routes, save_states, need_last, launch=True):
    """Run the forward kernel. Returns (y, ysum, last, states, block_l); ysum is the ungated route sum when
    a gate is given and ``save_states`` (else None). ``launch=False`` only allocates (fake tensors)."""
    G, grid, K, dim, N, groups, gsize = _geometry(u, A, B, routes)
    plan = route_plan(routes, grid)
    batch = u.shape[0]
    ct = compute_dtype(u.dtype)
    per_u, per_dt = u.dim() == G + 3, delta.dim() == G + 3
    Bv, Cv = _bc_view(B, G), _bc_view(C, G)
    names = kernel_names(N, batch, groups, gsize, u.device)
    bl, bd, warps = tile_config(N, gsize, max(plan.lengths), names)
    nbpg = -(-gsize // bd)
    nchunk_max = max(-(-n // bl) for n in plan.lengths)
    _check_offsets_fit(u, delta, Bv, Cv, z)

    y_like = u[:, 0] if per_u else u
    gate_in_kernel = z is not None and plan.exact
    separate = gate_in_kernel and save_states
    if plan.exact:
        y = torch.empty_like(y_like, memory_format=torch.preserve_format)
        acc = torch.empty_like(y) if separate else y
    else:
        acc = torch.zeros_like(y_like, memory_format=torch.preserve_format)
        y = acc
    last = torch.empty(batch, K, dim, N, dtype=ct, device=u.device) if need_last else None
    states = (torch.empty(batch, K, nchunk_max, dim, N, dtype=ct, device=u.device) if save_states else None)
    A_c = A.to(ct).contiguous()
    dummy = A_c
    if names[0] == "seq":  # (K, N, dim): that kernel reads A along the channels
        A_c = A_c.transpose(1, 2).contiguous()
    z_arg = z if z is not None else y
    by_cell = all(_grid_linear(t, G) for t in (u, delta, Bv, Cv, z, y, acc))
    sz = [z.stride(0), z.stride(1)] + _cell_strides(z, G, by_cell) if z is not None else [0] * 5
    sy = [y.stride(0), y.stride(1)] + _cell_strides(y, G, by_cell)
    sB = list(Bv.stride()[:4]) + _cell_strides(Bv, G, by_cell)
    sC = list(Cv.stride()[:4]) + _cell_strides(Cv, G, by_cell)
    if launch:
        _launch_forward(
            (batch, groups * nbpg), routes, grid, names[0], u, delta, A_c, Bv, Cv,
            D.contiguous() if D is not None else dummy, z_arg,
            delta_bias.contiguous() if delta_bias is not None else dummy,
            y, acc, last if last is not None else dummy, states if states is not None else dummy,
            K, dim, N, gsize, nbpg, nchunk_max, max(plan.lengths),
            *_map_strides(u, G, per_u, by_cell), *_map_strides(delta, G, per_dt, by_cell), *sB, *sC, *sz, *sy,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(softplus),
            GATE=gate_in_kernel, SEPARATE_ACC=separate, SAVE_STATES=save_states, WRITE_LAST=need_last,
            BLOCK_L=bl, BLOCK_D=bd, BLOCK_N=_next_pow2(N), CELLS=by_cell, num_warps=warps,
            **({"EVEN_N": _next_pow2(N) == N,
                "BC_ALIGN": state_vector_alignment((Bv, sB), (Cv, sC), block_n=_next_pow2(N), n=N)}
               if names[0] == "seq" else {}),
        )
    ysum = acc if separate else None
    if z is not None and not gate_in_kernel:
        ysum = acc if save_states else None
        y = (acc.to(ct) * F.silu(z.to(ct))).to(u.dtype)
    return y, ysum, last, states, bl


def scan_backward(dy, u, delta, A, B, C, D, z, delta_bias, softplus, routes, ysum, states, dlast):
    """Run the backward kernel; returns (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias) (None where absent)."""
    G, grid, K, dim, N, groups, gsize = _geometry(u, A, B, routes)
    plan, table = _device_table(routes, grid, u.device)
    batch = u.shape[0]
    ct = compute_dtype(u.dtype)
    per_u, per_dt = u.dim() == G + 3, delta.dim() == G + 3
    Bv, Cv = _bc_view(B, G), _bc_view(C, G)
    names = kernel_names(N, batch, groups, gsize, u.device)
    bl, bd, warps = tile_config(N, gsize, max(plan.lengths), names, "bwd")  # BLOCK_L as the forward's states
    split, cap = 1, None
    if names[1] == "seq":
        sms = torch.cuda.get_device_properties(u.device).multi_processor_count if u.is_cuda else None
        split, cap = seq_bwd_layout(_next_pow2(N), bd, batch * groups * -(-gsize // bd), sms)
        bd //= split                                                  # channels per program (one warp)
    nbpg = -(-gsize // bd)
    nblocks = groups * nbpg
    nchunk_max = states.shape[2]
    cells = 1
    for n in grid:
        cells *= n
    pgrid = list(grid) + [1] * (MAX_AXES - G)

    def grad_buffer(x, per_route):
        # Cells no route writes (or, per route, cells route k does not visit) must read as zero. The buffer
        # keeps x's memory layout so that the kernel's accesses stay as coalesced as x's.
        zero = not plan.exact if not per_route else not plan.full_cover
        return (torch.zeros_like if zero else torch.empty_like)(x, dtype=ct, memory_format=torch.preserve_format)

    du = grad_buffer(u, per_u)
    ddt = grad_buffer(delta, per_dt)
    alloc = torch.empty if plan.full_cover else torch.zeros
    dB_part = alloc(batch, K, nblocks, cells, N, dtype=ct, device=u.device)
    dC_part = alloc(batch, K, nblocks, cells, N, dtype=ct, device=u.device)
    dA_part = torch.empty(batch, K, dim, N, dtype=ct, device=u.device)
    dD_part = torch.empty(batch, K, dim, dtype=ct, device=u.device) if D is not None else None
    dbias_part = torch.empty(batch, K, dim, dtype=ct, device=u.device) if delta_bias is not None else None
    A_c = A.to(ct).contiguous()
    dummy = A_c
    seq = names[1] == "seq"
    if seq:
        from .bwd_seq import routed_scan_bwd_seq_kernel as kernel
        A_c = A_c.transpose(1, 2).contiguous()  # (K, N, dim): read along the channels
        bn = _next_pow2(N)
        extra = dict(scratch_ptr=torch.empty(batch * nblocks * bl * bn * bd, dtype=ct, device=u.device),
                     EVEN_N=bn == N, SPLIT=split)
    else:
        from .bwd import routed_scan_bwd_kernel as kernel
        extra = {}
        cap = int(os.environ.get("VSSM_SCAN_BWD_MAXNREG") or 0)  # benchmarks only: the tiled kernel is uncapped
    if cap:
        extra["maxnreg"] = cap
    by_cell = all(_grid_linear(t, G) for t in (u, delta, Bv, Cv, z, dy, du, ddt))
    sz = [z.stride(0), z.stride(1)] + _cell_strides(z, G, by_cell) if z is not None else [0] * 5
    sB = list(Bv.stride()[:4]) + _cell_strides(Bv, G, by_cell)
    sC = list(Cv.stride()[:4]) + _cell_strides(Cv, G, by_cell)
    if seq:
        extra["BC_ALIGN"] = state_vector_alignment((Bv, sB), (Cv, sC), block_n=bn, n=N)
    kernel[(batch, nblocks)](
        u, delta, A_c, Bv, Cv,
        D.contiguous() if D is not None else dummy, z if z is not None else dy,
        delta_bias.contiguous() if delta_bias is not None else dummy, dy, states,
        dlast.contiguous() if dlast is not None else dummy, table, _cell_table(routes, grid, u.device),
        du, ddt, dA_part, dB_part, dC_part,
        dD_part if dD_part is not None else dummy, dbias_part if dbias_part is not None else dummy,
        K, dim, N, gsize, nbpg, nchunk_max, max(plan.lengths), cells, pgrid[1] * pgrid[2], pgrid[2],
        *_map_strides(u, G, per_u, by_cell), *_map_strides(delta, G, per_dt, by_cell), *sB, *sC, *sz,
        dy.stride(0), dy.stride(1), *_cell_strides(dy, G, by_cell),
        *_map_strides(du, G, per_u, by_cell), *_map_strides(ddt, G, per_dt, by_cell),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(softplus),
        SHARED_U=not per_u, SHARED_DT=not per_dt, HAS_DLAST=dlast is not None,
        BLOCK_L=bl, BLOCK_D=bd, BLOCK_N=_next_pow2(N), CELLS=by_cell, num_warps=warps, **extra,
    )

    def finish_bc(part, like):
        # sum the channel blocks of each group, then lay the gradient out like B/C themselves
        total = part.view(batch, K, groups, nbpg, cells, N).sum(3).transpose(3, 4)
        out = torch.empty_like(like, memory_format=torch.preserve_format)
        out.copy_(total.reshape(like.shape))
        return out

    dB, dC = finish_bc(dB_part, B), finish_bc(dC_part, C)
    dz = None
    if z is not None:
        zc = z.to(ct)
        sig = torch.sigmoid(zc)
        dz = torch.empty_like(z, memory_format=torch.preserve_format)
        dz.copy_(dy.to(ct) * ysum.to(ct) * sig * (1 + zc * (1 - sig)))
    return (
        du.to(u.dtype), ddt.to(delta.dtype), dA_part.sum(0).to(A.dtype), dB, dC,
        dD_part.sum(0).to(D.dtype) if D is not None else None, dz,
        dbias_part.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
    )
