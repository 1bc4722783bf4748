"""Backward routed selective scan kernel, steps one after another inside each thread.

The counterpart of ``fwd_seq.py``: each thread owns one channel and its N states; the arguments, the
program grid and the outputs are those of ``bwd.py`` (same gradients, same partial sums for the launcher to
finish, no atomics), and it restarts from the states any forward kernel saved every BLOCK_L steps. For each
route, tiles of BLOCK_L steps are visited last to first, in two passes:

1. forward over the tile from its saved state, writing h_t to a per-program scratch buffer (BLOCK_L x N x
   BLOCK_D values, read back at once by the same thread, so it stays in cache);
2. backward over the tile: x_t = C_t g_t + a_{t+1} x_{t+1}, with a_{t+1} the decay computed one iteration
   earlier, and from h_t, x_t every gradient as in ``bwd.py`` (a_t h_{t-1} = h_t - b_t, so no division).

dB / dC are sums over the program's channels: a reduce-scatter across the lanes of the warp per step
(``common.lane_sum_scatter``), after which each lane stores one state's sum.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .common import (channel_step_loads, channel_total, decay, lane_state, lane_sum_scatter, sigmoid,
                     softplus, state_rows, state_share, state_vector_load)


@triton.jit
def _delta(dt_raw, bias, ct: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(delta after bias and softplus, delta before softplus) in the compute dtype."""
    pre = dt_raw.to(ct)
    if HAS_BIAS:
        pre = pre + bias
    dt = pre
    if SOFTPLUS:
        dt = softplus(pre)
    return dt, pre


@triton.jit
def _backward_loads(u_base, dt_base, B_base, C_base, dy_base, z_base, du_base, ddt_base, scratch_row,
                    cells_ptr, tbl_ptr, k, t, lmax,
                    su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2,
                    sdy_0, sdy_1, sdy_2, sz_0, sz_1, sz_2, sdu_0, sdu_1, sdu_2, sddt_0, sddt_1, sddt_2,
                    u_d, dt_d, dy_d, z_d, du_d, ddt_d, B_n, C_n, d_mask, n_mask, accumulate, g1g2, g2,
                    HAS_Z: tl.constexpr, SHARED_U: tl.constexpr, SHARED_DT: tl.constexpr, CELLS: tl.constexpr,
                    BC_ALIGN: tl.constexpr):
    """Every load of one step of the gradient pass (raw dtypes), and the cell of the step."""
    u, dt_raw, Bt, c0, c1, c2 = channel_step_loads(u_base, dt_base, B_base, cells_ptr, tbl_ptr, k, t, lmax,
                                               su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2,
                                               u_d, dt_d, B_n, d_mask, n_mask, CELLS, BC_ALIGN)
    Ct = state_vector_load(C_base, c0, c1, c2, sC_0, sC_1, sC_2, C_n, n_mask, BC_ALIGN)
    dy = tl.load(dy_base + (c0 * sdy_0 + c1 * sdy_1 + c2 * sdy_2) + dy_d, mask=d_mask, other=0.0)
    du_off = (c0 * sdu_0 + c1 * sdu_1 + c2 * sdu_2) + du_d
    ddt_off = (c0 * sddt_0 + c1 * sddt_1 + c2 * sddt_2) + ddt_d
    zv = dy
    if HAS_Z:
        zv = tl.load(z_base + (c0 * sz_0 + c1 * sz_1 + c2 * sz_2) + z_d, mask=d_mask, other=0.0)
    du_prev = tl.zeros_like(u_d).to(du_base.dtype.element_ty)
    ddt_prev = tl.zeros_like(u_d).to(ddt_base.dtype.element_ty)
    if SHARED_U:  # sums of earlier routes at shared u / delta cells
        du_prev = tl.load(du_base + du_off, mask=d_mask & (accumulate != 0), other=0.0)
    if SHARED_DT:
        ddt_prev = tl.load(ddt_base + ddt_off, mask=d_mask & (accumulate != 0), other=0.0)
    hs = tl.load(scratch_row)
    cell = c0 * g1g2 + c1 * g2 + c2  # linear cell index, for the dB / dC partial sums
    return u, dt_raw, Bt, Ct, dy, zv, du_prev, ddt_prev, hs, du_off, ddt_off, cell


@triton.jit
def routed_scan_bwd_seq_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, states_ptr, dlast_ptr, tbl_ptr,
    cells_ptr,
    du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    K, dim, N, gsize, nbpg, nchunk_max, lmax, cells, g1g2, g2,
    su_b, su_k, su_d, su_0, su_1, su_2,
    sdt_b, sdt_k, sdt_d, sdt_0, sdt_1, sdt_2,
    sB_b, sB_k, sB_g, sB_n, sB_0, sB_1, sB_2,
    sC_b, sC_k, sC_g, sC_n, sC_0, sC_1, sC_2,
    sz_b, sz_d, sz_0, sz_1, sz_2,
    sdy_b, sdy_d, sdy_0, sdy_1, sdy_2,
    sdu_b, sdu_k, sdu_d, sdu_0, sdu_1, sdu_2,
    sddt_b, sddt_k, sddt_d, sddt_0, sddt_1, sddt_2,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SHARED_U: tl.constexpr, SHARED_DT: tl.constexpr, HAS_DLAST: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CELLS: tl.constexpr,
    scratch_ptr=None, EVEN_N: tl.constexpr = False, SPLIT: tl.constexpr = 1, BC_ALIGN: tl.constexpr = 1,
):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1)
    nblocks = tl.num_programs(1)
    group = pid_c // nbpg
    # SPLIT lanes per channel (1 or 2), each with every SPLIT-th state of it: the tiles are (ROWS, LANES), the
    # rows in a thread's registers, the columns on the warp's lanes
    ROWS: tl.constexpr = BLOCK_N // SPLIT
    LANES: tl.constexpr = BLOCK_D * SPLIT
    lane = tl.arange(0, LANES)
    part = lane % SPLIT                                             # which share of its channel's states
    d_in_group = (pid_c % nbpg) * BLOCK_D + lane // SPLIT
    d_mask = d_in_group < gsize
    d = group * gsize + d_in_group                                  # (LANES,): the channel of each lane
    own = d_mask & (part == 0)                                      # lanes that store per-channel results
    n = tl.arange(0, BLOCK_N)                                       # all states (the B / C loads)
    n_tile = tl.arange(0, ROWS)[:, None] * SPLIT + part[None, :]    # (ROWS, LANES): element's state
    if EVEN_N:
        n_mask = n < BLOCK_N
        dn_mask = (n_tile < BLOCK_N) & d_mask[None, :]
    else:
        n_mask = n < N
        dn_mask = (n_tile < N) & d_mask[None, :]
    n_lane, lane_stores = lane_state(ROWS, LANES, SPLIT)            # the dB / dC state of a lane
    n_store = lane_stores & (n_lane < N)
    st_dn = d[None, :] * N + n_tile                                 # (ROWS, LANES) offsets of saved states
    ct = states_ptr.dtype.element_ty
    # this program's scratch tile of states: (BLOCK_L, ROWS, LANES), a thread's values at its own lane
    scratch = scratch_ptr + (pid_b * nblocks + pid_c) * (BLOCK_L * BLOCK_N * BLOCK_D)
    # lanes paired by xor: still one 128-byte line per state row, but not provably contiguous, so the compiler
    # keeps the loop's layout (one channel per thread) instead of vectorising these accesses along channels
    sc_nd = tl.arange(0, ROWS)[:, None] * LANES + (lane ^ 1)[None, :]
    u_d, dt_d, dy_d, z_d, du_d, ddt_d = d * su_d, d * sdt_d, d * sdy_d, d * sz_d, d * sdu_d, d * sddt_d
    B_n, C_n = n * sB_n, n * sC_n

    for k in range(K):
        length = tl.load(tbl_ptr + k * 15)
        accumulate = tl.load(tbl_ptr + k * 15 + 1)
        A, a_scale = state_rows(A_ptr, k, N, dim, d, d_mask, n_tile, BLOCK_N, ROWS, LANES)
        Dk = tl.zeros((LANES,), dtype=ct)
        bias = tl.zeros((LANES,), dtype=ct)
        if HAS_D:
            Dk = tl.load(D_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        dA_acc = tl.zeros((ROWS, LANES), dtype=ct)
        dD_acc = tl.zeros((LANES,), dtype=ct)
        dbias_acc = tl.zeros((LANES,), dtype=ct)
        # a_(t+1) x_(t+1), the part of x_t that flows back from the next step (the last state's gradient
        # at the route's end, where the decay is 1)
        if HAS_DLAST:
            ax_next = tl.load(dlast_ptr + (pid_b * K + k) * dim * N + st_dn, mask=dn_mask, other=0.0).to(ct)
        else:
            ax_next = tl.zeros((ROWS, LANES), dtype=ct)
        u_base = u_ptr + (pid_b * su_b + k * su_k)
        dt_base = dt_ptr + (pid_b * sdt_b + k * sdt_k)
        B_base = B_ptr + tl.multiple_of(pid_b * sB_b + k * sB_k + group * sB_g, BC_ALIGN)
        C_base = C_ptr + tl.multiple_of(pid_b * sC_b + k * sC_k + group * sC_g, BC_ALIGN)
        dy_base = dy_ptr + pid_b * sdy_b
        z_base = z_ptr + pid_b * sz_b
        du_base = du_ptr + (pid_b * sdu_b + k * sdu_k)
        ddt_base = ddt_ptr + (pid_b * sddt_b + k * sddt_k)
        st_base = states_ptr + (pid_b * K + k) * nchunk_max * dim * N
        part_base = ((pid_b * K + k) * nblocks + pid_c) * cells * N
        nchunks = tl.cdiv(length, BLOCK_L)
        for cc in range(nchunks):
            c = nchunks - 1 - cc
            t0 = c * BLOCK_L
            steps = tl.minimum(BLOCK_L, length - t0)
            # pass 1: the tile's states from the one saved at its start (loads of step i + 1 issued first)
            h = tl.load(st_base + c * dim * N + st_dn, mask=dn_mask, other=0.0)
            u, dt_raw, Bt, _c0, _c1, _c2 = channel_step_loads(
                u_base, dt_base, B_base, cells_ptr, tbl_ptr, k, t0, lmax, su_0, su_1, su_2, sdt_0, sdt_1, sdt_2,
                sB_0, sB_1, sB_2, u_d, dt_d, B_n, d_mask, n_mask, CELLS, BC_ALIGN)
            for i in range(steps):
                nu, ndt_raw, nB, _c0, _c1, _c2 = channel_step_loads(
                    u_base, dt_base, B_base, cells_ptr, tbl_ptr, k, t0 + tl.minimum(i + 1, steps - 1), lmax,
                    su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, u_d, dt_d, B_n, d_mask, n_mask, CELLS, BC_ALIGN)
                dt, _pre = _delta(dt_raw, bias, ct, HAS_BIAS, SOFTPLUS)
                h = decay(dt, A) * h + (dt * u.to(ct))[None, :] * state_share(Bt.to(ct), part, ROWS, SPLIT)
                tl.store(scratch + i * (BLOCK_N * BLOCK_D) + sc_nd, h)
                u, dt_raw, Bt = nu, ndt_raw, nB
            # Each thread reads back only the scratch values it wrote, in the layout chosen above; the barriers
            # (one warp: nearly free) keep that safe should the compiler ever map the two accesses differently.
            tl.debug_barrier()
            # pass 2: the gradients, last step first (loads of the step before issued first)
            (u, dt_raw, Bt, Ct, dy, zv, du_prev, ddt_prev, hs, du_off, ddt_off, cell) = _backward_loads(
                u_base, dt_base, B_base, C_base, dy_base, z_base, du_base, ddt_base,
                scratch + (steps - 1) * (BLOCK_N * BLOCK_D) + sc_nd, cells_ptr, tbl_ptr, k, t0 + steps - 1, lmax,
                su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2, sdy_0, sdy_1, sdy_2,
                sz_0, sz_1, sz_2, sdu_0, sdu_1, sdu_2, sddt_0, sddt_1, sddt_2, u_d, dt_d, dy_d, z_d, du_d, ddt_d,
                B_n, C_n, d_mask, n_mask, accumulate, g1g2, g2, HAS_Z, SHARED_U, SHARED_DT, CELLS, BC_ALIGN)
            for j in range(steps):
                ip = tl.maximum(steps - 2 - j, 0)
                nxt = _backward_loads(
                    u_base, dt_base, B_base, C_base, dy_base, z_base, du_base, ddt_base,
                    scratch + ip * (BLOCK_N * BLOCK_D) + sc_nd, cells_ptr, tbl_ptr, k, t0 + ip, lmax,
                    su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2, sdy_0, sdy_1, sdy_2,
                    sz_0, sz_1, sz_2, sdu_0, sdu_1, sdu_2, sddt_0, sddt_1, sddt_2, u_d, dt_d, dy_d, z_d, du_d,
                    ddt_d, B_n, C_n, d_mask, n_mask, accumulate, g1g2, g2, HAS_Z, SHARED_U, SHARED_DT, CELLS, BC_ALIGN)
                uc = u.to(ct)
                Bc = state_share(Bt.to(ct), part, ROWS, SPLIT)   # this lane's states
                g = dy.to(ct)
                if HAS_Z:
                    zc = zv.to(ct)
                    g = g * zc * sigmoid(zc)
                dt, dt_pre = _delta(dt_raw, bias, ct, HAS_BIAS, SOFTPLUS)
                dt = tl.where(d_mask, dt, 0.0)
                du_dt = dt * uc
                x = state_share(Ct.to(ct), part, ROWS, SPLIT) * g[None, :] + ax_next
                x = tl.where(dn_mask, x, 0.0)
                hb = hs - du_dt[None, :] * Bc                           # a_t h_(t-1)
                xB = channel_total(tl.sum(x * Bc, axis=0), lane, SPLIT)
                xhb = x * hb
                du = xB * dt
                if HAS_D:
                    du += Dk * g
                    dD_acc += g * uc
                ddt = xB * uc + channel_total(tl.sum(xhb * A, axis=0), lane, SPLIT) * a_scale
                dA_acc += xhb * dt[None, :]
                if SOFTPLUS:
                    ddt = ddt * sigmoid(dt_pre)
                ddt = tl.where(d_mask, ddt, 0.0)
                if HAS_BIAS:
                    dbias_acc += ddt
                # over this program's channels, lane l ending with state n_lane[l]'s sum
                dB = lane_sum_scatter(x * du_dt[None, :], ROWS, LANES, SPLIT)
                dC = lane_sum_scatter(hs * g[None, :], ROWS, LANES, SPLIT)
                tl.store(dB_ptr + (part_base + cell * N) + n_lane, dB, mask=n_store)
                tl.store(dC_ptr + (part_base + cell * N) + n_lane, dC, mask=n_store)
                if SHARED_U:
                    du += du_prev
                if SHARED_DT:
                    ddt += ddt_prev
                tl.store(du_base + du_off, du, mask=own)
                tl.store(ddt_base + ddt_off, ddt, mask=own)
                ax_next = decay(dt, A) * x
                (u, dt_raw, Bt, Ct, dy, zv, du_prev, ddt_prev, hs, du_off, ddt_off, cell) = nxt
            tl.debug_barrier()  # the next tile's pass 1 overwrites the scratch

        tl.store(dA_ptr + (pid_b * K + k) * dim * N + st_dn, dA_acc, mask=dn_mask)
        if HAS_D:
            tl.store(dD_ptr + (pid_b * K + k) * dim + d, dD_acc, mask=own)
        if HAS_BIAS:
            tl.store(dbias_ptr + (pid_b * K + k) * dim + d, dbias_acc, mask=own)
