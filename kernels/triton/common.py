"""Small Triton helpers shared by the forward and backward scan kernels."""

from __future__ import annotations

import triton
import triton.language as tl

ROW = 15  # columns of a device route table: length, accumulate, finalize, then 3 x (axis, size, first, incr)


@triton.jit
def scan_combine(a_left, b_left, a_right, b_right):
    """Compose two steps of h -> a * h + b (left first): the operator of the associative scan."""
    return a_left * a_right, b_left * a_right + b_right


@triton.jit
def softplus(x):
    """log(1 + exp(x)) as torch computes it (x itself above 20), accurate for very negative x too.

    fp32: log1p(e) for e = exp(-|x|) in (0, 1] as 2 atanh(s), s = e / (2 + e) <= 1/3, by its odd series to
    s^15 (truncation < 2e-9 relative): one division and eight multiply-adds, a third of the instructions of
    a library log plus the rounding fix-up below, which fp64 keeps."""
    e = tl.exp(-tl.abs(x))
    if x.dtype == tl.float64:
        one_plus = 1.0 + e
        # log1p(e) without a log1p primitive: log(1+e) * e / ((1+e) - 1) cancels the rounding of 1 + e.
        denom = one_plus - 1.0
        log1p_e = tl.where(denom == 0.0, e, tl.log(one_plus) * (e / tl.where(denom == 0.0, 1.0, denom)))
    else:
        s = e / (2.0 + e)
        s2 = s * s
        series = 1.0 / 15.0
        series = series * s2 + 1.0 / 13.0
        series = series * s2 + 1.0 / 11.0
        series = series * s2 + 1.0 / 9.0
        series = series * s2 + 1.0 / 7.0
        series = series * s2 + 1.0 / 5.0
        series = series * s2 + 1.0 / 3.0
        series = series * s2 + 1.0
        log1p_e = 2.0 * s * series
    return tl.where(x > 20.0, x, tl.maximum(x, 0.0) + log1p_e)


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def route_coords(tbl_ptr, k, t):
    """Grid coordinates (c0, c1, c2) of steps ``t`` of route ``k`` (see routing.py for the table)."""
    row = tbl_ptr + k * 15
    ax0 = tl.load(row + 3)
    m0 = tl.load(row + 4)
    f0 = tl.load(row + 5)
    s0 = tl.load(row + 6)
    ax1 = tl.load(row + 7)
    m1 = tl.load(row + 8)
    f1 = tl.load(row + 9)
    s1 = tl.load(row + 10)
    ax2 = tl.load(row + 11)
    m2 = tl.load(row + 12)
    f2 = tl.load(row + 13)
    s2 = tl.load(row + 14)
    i2 = t % m2
    rest = t // m2
    i1 = rest % m1
    i0 = rest // m1
    v0 = f0 + s0 * i0
    v1 = f1 + s1 * i1
    v2 = f2 + s2 * i2
    c0 = tl.where(ax0 == 0, v0, tl.where(ax1 == 0, v1, v2))
    c1 = tl.where(ax0 == 1, v0, tl.where(ax1 == 1, v1, v2))
    c2 = tl.where(ax0 == 2, v0, tl.where(ax1 == 2, v1, v2))
    return c0, c1, c2


@triton.jit
def route_cells(cells_ptr, tbl_ptr, k, t, t_mask, lmax, CELLS: tl.constexpr):
    """Grid coordinates of steps ``t`` of route ``k``. With ``CELLS`` every tensor is laid out row-major over
    the grid (a stride per cell), so the route's precomputed linear cell indices (one int32 row per route)
    are returned as the fastest coordinate and the other two are constant zeros: a cached load per step
    instead of the mixed-radix integer divisions of ``route_coords``."""
    if CELLS:
        cell = tl.load(cells_ptr + k * lmax + t, mask=t_mask, other=0)
        return 0, 0, cell
    else:
        return route_coords(tbl_ptr, k, t)


@triton.jit
def state_rows(A_ptr, k, N, dim, d, d_mask, n_tile, BLOCK_N: tl.constexpr, ROWS: tl.constexpr, LANES: tl.constexpr):
    """A[k] of the in-thread kernels as a (ROWS, LANES) tile, from A passed transposed as (K, N, dim): element
    (i, j) is A[k, n_tile[i, j], d[j]] (``n_tile`` broadcasts to the tile; ROWS = BLOCK_N unless a channel's
    states are shared between lanes).

    Read one state row at a time: a single 2-D load would be vectorised along the channels and pull the
    kernel's loop into a layout that spreads a channel's states over lanes. In fp32 the tile comes scaled by
    log2(e), for ``decay``; returns (tile, the factor that undoes the scale)."""
    ct = A_ptr.dtype.element_ty
    A = tl.zeros((ROWS, LANES), dtype=ct)
    for nn in tl.static_range(BLOCK_N):
        row = tl.load(A_ptr + (k * N + nn) * dim + d, mask=d_mask & (nn < N), other=0.0)
        A = tl.where(n_tile == nn, row[None, :], A)
    unscale = 1.0
    if ct == tl.float32:
        A = A * 1.4426950408889634
        unscale = 0.6931471805599453
    return A, unscale


@triton.jit
def decay(dt, A):
    """exp(delta A) for a (states, channels) tile from ``state_rows`` (exp2 of the pre-scaled A in fp32)."""
    if A.dtype == tl.float32:
        return tl.exp2(dt[None, :] * A)
    else:
        return tl.exp(dt[None, :] * A)


@triton.jit
def channel_step_loads(u_base, dt_base, B_base, cells_ptr, tbl_ptr, k, t, lmax, su_0, su_1, su_2, sdt_0, sdt_1,
                       sdt_2, sB_0, sB_1, sB_2, u_d, dt_d, B_n, d_mask, n_mask, CELLS: tl.constexpr,
                       BC_ALIGN: tl.constexpr = 1):
    """The in-thread kernels' loads of step ``t`` (raw dtypes): u and delta (a channel per thread), B (the
    states), and the step's grid coordinates for the caller's other accesses."""
    c0, c1, c2 = route_cells(cells_ptr, tbl_ptr, k, t, True, lmax, CELLS)
    u = tl.load(u_base + (c0 * su_0 + c1 * su_1 + c2 * su_2) + u_d, mask=d_mask, other=0.0)
    dt_raw = tl.load(dt_base + (c0 * sdt_0 + c1 * sdt_1 + c2 * sdt_2) + dt_d, mask=d_mask, other=0.0)
    Bt = state_vector_load(B_base, c0, c1, c2, sB_0, sB_1, sB_2, B_n, n_mask, BC_ALIGN)
    return u, dt_raw, Bt, c0, c1, c2


@triton.jit
def state_vector_load(base, c0, c1, c2, s0, s1, s2, state_offsets, n_mask, BC_ALIGN: tl.constexpr):
    """One step's B or C (all states, the same in every lane) at grid cell (c0, c1, c2), as vector loads of
    BC_ALIGN states (``launch.state_vector_alignment`` checked every offset): Vim's bf16 rows (a per-cell
    stride of 56) load as two 16-byte vectors instead of sixteen 2-byte values. The caller hints the base's
    offset the same way. Each product is hinted where it is made: a hint on a function argument, or on a
    sum that folds away (0 * s0 + ...), is lost."""
    offset = (tl.multiple_of(c0 * s0, BC_ALIGN) + tl.multiple_of(c1 * s1, BC_ALIGN)
              + tl.multiple_of(c2 * s2, BC_ALIGN))
    return tl.load(base + offset + state_offsets, mask=n_mask, other=0.0)


@triton.jit
def lane_sum_scatter(v, ROWS: tl.constexpr, LANES: tl.constexpr, SPLIT: tl.constexpr = 1):
    """Sums over the channels of a (ROWS, LANES) tile, spread one state per lane (a reduce-scatter).

    For the in-thread kernels, whose LANES columns are the lanes of one warp: a channel per lane, or with
    SPLIT = 2 a channel per lane pair, each lane holding every other state of it (``state_share``).
    ``tl.sum`` across the lanes would reduce every row in log2(LANES) shuffles and adds; here each stage trades
    half of the remaining rows with the partner lane (``tl.gather`` along the lanes lowers to one shuffle per
    value) and keeps the other half, so 16 rows over 32 lanes take 8 + 4 + 2 + 1 + 1 = 16 shuffles instead of
    80. Returns a (LANES,) tensor: lane l holds the total of state ``lane_state(l)``, summed over the lanes of
    the same share. With more rows than channels (a small group; SPLIT = 1 only) it is a plain ``tl.sum``, one
    total per state; ``lane_state`` matches either way.
    (One return per function: older Triton compiles every return statement of a constexpr branch.)
    """
    if ROWS > LANES // SPLIT:
        total = tl.sum(v, axis=1)
    else:
        lane = tl.arange(0, LANES)
        t = tl.trans(v)                                                 # (LANES, R): R rows left per lane
        for s in tl.static_range(ROWS.bit_length() - 1):             # stage s: partner lane = lane ^ (LANES >> s+1)
            even, odd = tl.split(tl.reshape(t, (LANES, ROWS >> (s + 1), 2)))   # rows 2j and 2j + 1
            takes_odd = ((lane & (LANES >> (s + 1))) != 0)[:, None]
            send = tl.where(takes_odd, even, odd)
            keep = tl.where(takes_odd, odd, even)
            partner = tl.broadcast_to((lane ^ (LANES >> (s + 1)))[:, None], (LANES, ROWS >> (s + 1)))
            t = keep + tl.gather(send, partner, 0)
        total = tl.reshape(t, (LANES,))
        # the lanes of one share that hold the same row add up their partial sums
        for s in tl.static_range(ROWS.bit_length() - 1, LANES.bit_length() - SPLIT.bit_length()):
            total = total + tl.gather(total, lane ^ (LANES >> (s + 1)), 0)
    return total


@triton.jit
def lane_state(ROWS: tl.constexpr, LANES: tl.constexpr, SPLIT: tl.constexpr = 1):
    """(state each lane holds after ``lane_sum_scatter``, whether the lane is the one that stores it)."""
    if ROWS > LANES // SPLIT:
        state = tl.arange(0, ROWS)
        stores = state >= 0
    else:
        lane = tl.arange(0, LANES)
        row = tl.zeros((LANES,), dtype=tl.int32)
        for s in tl.static_range(ROWS.bit_length() - 1):
            row += ((lane & (LANES >> (s + 1))) != 0).to(tl.int32) << s
        state = row * SPLIT + lane % SPLIT
        stores = (lane & (LANES // ROWS - 1)) < SPLIT
    return state, stores


@triton.jit
def state_share(vec, part, ROWS: tl.constexpr, SPLIT: tl.constexpr):
    """A (BLOCK_N,) vector of per-state values (the same in every lane) as the (ROWS, LANES) tile (or, with
    SPLIT = 1, a (ROWS, 1) column that broadcasts to it) of the states each lane holds: state i * SPLIT + part[j] at (i, j), so with SPLIT = 2 the even states in one lane of a
    pair and the odd ones in the other (a select per value, no data movement)."""
    if SPLIT == 1:
        tile = vec[:, None]                                             # broadcasts over the lanes
    else:
        even, odd = tl.split(tl.reshape(vec, (ROWS, 2)))
        tile = tl.where((part == 1)[None, :], odd[:, None], even[:, None])
    return tile


@triton.jit
def channel_total(partial, lane, SPLIT: tl.constexpr):
    """Per-channel sums over states from each lane's share of them (adds the partner lane's when SPLIT = 2)."""
    total = partial
    if SPLIT == 2:
        total = partial + tl.gather(partial, lane ^ 1, 0)
    return total
