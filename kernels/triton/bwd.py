"""Backward routed selective scan kernel.

Same program layout as the forward kernel (a batch element x a channel block, all routes in turn). For each
route the tiles are visited last to first. A tile's states are recomputed from the state saved at its start
by the forward pass; the gradient with respect to the state, x_t = C_t g_t + a_{t+1} x_{t+1}, comes from a
reverse associative scan inside the tile plus the carry x from the tile after it. From h and x every gradient
follows locally:

    du_t    = delta_t * sum_n x_t B_t + D g_t
    ddelta_t = u_t * sum_n x_t B_t + sum_n x_t A (h_t - b_t)          (a_t h_{t-1} = h_t - b_t)
    dA     += sum_t delta_t x_t (h_t - b_t);   dB_t = sum_d x_t delta_t u_t;   dC_t = sum_d h_t g_t

where g_t is the incoming gradient of the (ungated) route sum. dB/dC are summed over this program's channels
and written per channel block (cell-major, state index fastest); dA, dD and d(delta_bias) per batch element: the launcher finishes those sums,
so no atomics are used and the result is deterministic.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .common import route_cells, scan_combine, sigmoid, softplus


@triton.jit
def routed_scan_bwd_kernel(
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
):
    pid_b = tl.program_id(0).to(tl.int64)  # program bases in 64 bits; offsets inside a batch element 32-bit
    pid_c = tl.program_id(1)
    nblocks = tl.num_programs(1)
    group = pid_c // nbpg
    # Tiles are built directly in 3-D (steps, channels, states), as in the forward kernel.
    d_in_group = (pid_c % nbpg) * BLOCK_D + tl.arange(0, BLOCK_D)[None, :, None]
    d_mask = d_in_group < gsize
    d = group * gsize + d_in_group                                  # (1, BD, 1)
    n = tl.arange(0, BLOCK_N)[None, None, :]                        # (1, 1, BN)
    n_mask = n < N
    rows = tl.arange(0, BLOCK_L)[:, None, None]                    # (BL, 1, 1)
    dn_mask = d_mask & n_mask

    for k in range(K):
        length = tl.load(tbl_ptr + k * 15)
        accumulate = tl.load(tbl_ptr + k * 15 + 1)
        A = tl.load(A_ptr + (k * dim + d) * N + n, mask=dn_mask, other=0.0)    # (1, BD, BN)
        ct = A.dtype
        if HAS_D:
            Dk = tl.load(D_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        dA_acc = tl.zeros((1, BLOCK_D, BLOCK_N), dtype=ct)
        dD_acc = tl.zeros((1, BLOCK_D, 1), dtype=ct)
        dbias_acc = tl.zeros((1, BLOCK_D, 1), dtype=ct)
        # dL/dh at the first step of the next tile; past the route's end, the last state's gradient
        if HAS_DLAST:
            x_carry = tl.load(dlast_ptr + (pid_b * K + k) * dim * N + (d * N + n), mask=dn_mask,
                              other=0.0).to(ct)
        else:
            x_carry = tl.zeros((1, BLOCK_D, BLOCK_N), dtype=ct)
        u_base = u_ptr + (pid_b * su_b + k * su_k)
        dt_base = dt_ptr + (pid_b * sdt_b + k * sdt_k)
        B_base = B_ptr + (pid_b * sB_b + k * sB_k + group * sB_g)
        C_base = C_ptr + (pid_b * sC_b + k * sC_k + group * sC_g)
        dy_base = dy_ptr + pid_b * sdy_b
        z_base = z_ptr + pid_b * sz_b
        du_base = du_ptr + (pid_b * sdu_b + k * sdu_k)
        ddt_base = ddt_ptr + (pid_b * sddt_b + k * sddt_k)
        st_base = states_ptr + (pid_b * K + k) * nchunk_max * dim * N
        part_base = ((pid_b * K + k) * nblocks + pid_c) * cells * N
        u_d, dt_d, dy_d, z_d, du_d, ddt_d = d * su_d, d * sdt_d, d * sdy_d, d * sz_d, d * sdu_d, d * sddt_d
        B_n, C_n, st_dn = n * sB_n, n * sC_n, d * N + n
        nchunks = tl.cdiv(length, BLOCK_L)
        for cc in range(nchunks):
            c = nchunks - 1 - cc
            t = c * BLOCK_L + rows
            t_mask = t < length
            td_mask = t_mask & d_mask
            tn_mask = t_mask & n_mask
            c0, c1, c2 = route_cells(cells_ptr, tbl_ptr, k, t, t_mask, lmax, CELLS)
            h0 = tl.load(st_base + (c * dim * N + st_dn), mask=dn_mask, other=0.0)
            u = tl.load(u_base + (c0 * su_0 + c1 * su_1 + c2 * su_2 + u_d), mask=td_mask, other=0.0).to(ct)
            dt_raw = tl.load(dt_base + (c0 * sdt_0 + c1 * sdt_1 + c2 * sdt_2 + dt_d), mask=td_mask,
                             other=0.0).to(ct)
            if HAS_BIAS:
                dt_raw = dt_raw + bias
            dt = dt_raw
            if SOFTPLUS:
                dt = softplus(dt_raw)
            dt = tl.where(td_mask, dt, 0.0)
            Bt = tl.load(B_base + (c0 * sB_0 + c1 * sB_1 + c2 * sB_2 + B_n), mask=tn_mask, other=0.0).to(ct)
            Ct = tl.load(C_base + (c0 * sC_0 + c1 * sC_1 + c2 * sC_2 + C_n), mask=tn_mask, other=0.0).to(ct)
            g = tl.load(dy_base + (c0 * sdy_0 + c1 * sdy_1 + c2 * sdy_2 + dy_d), mask=td_mask, other=0.0).to(ct)
            du_off = du_base + (c0 * sdu_0 + c1 * sdu_1 + c2 * sdu_2 + du_d)
            ddt_off = ddt_base + (c0 * sddt_0 + c1 * sddt_1 + c2 * sddt_2 + ddt_d)
            # sums of earlier routes at shared u/delta cells, loaded with the inputs (one round trip)
            if SHARED_U:
                du_prev = tl.load(du_off, mask=td_mask & (accumulate != 0), other=0.0)
            if SHARED_DT:
                ddt_prev = tl.load(ddt_off, mask=td_mask & (accumulate != 0), other=0.0)
            if HAS_Z:
                zv = tl.load(z_base + (c0 * sz_0 + c1 * sz_1 + c2 * sz_2 + z_d), mask=td_mask, other=0.0).to(ct)
                g = g * zv * sigmoid(zv)

            # States of this tile, from the saved state at its start.
            du_dt = dt * u
            drive = du_dt * Bt
            decay_cum, drive_cum = tl.associative_scan((tl.exp(dt * A), drive), 0, scan_combine)
            hs = decay_cum * h0 + drive_cum

            # Decay of the following step (the next tile's first step for the last row).
            tn = t + 1
            tn_ok = (tn < length) & d_mask
            e0, e1, e2 = route_cells(cells_ptr, tbl_ptr, k, tn, tn < length, lmax, CELLS)
            dt_next = tl.load(dt_base + (e0 * sdt_0 + e1 * sdt_1 + e2 * sdt_2 + dt_d), mask=tn_ok,
                              other=0.0).to(ct)
            if HAS_BIAS:
                dt_next = dt_next + bias
            if SOFTPLUS:
                dt_next = softplus(dt_next)
            dt_next = tl.where(tn_ok, dt_next, 0.0)

            # x_t = C_t g_t + a_{t+1} x_{t+1}, scanned from the tile's end, plus the carry from the next tile.
            prod_next, x_local = tl.associative_scan((tl.exp(dt_next * A), Ct * g), 0, scan_combine, reverse=True)
            x = x_local + prod_next * x_carry
            x = tl.where(t_mask, x, 0.0)
            x_carry = tl.sum(tl.where(rows == 0, x, 0.0), axis=0, keep_dims=True)

            hb = hs - drive  # a_t h_{t-1}
            xB = tl.sum(x * Bt, axis=2, keep_dims=True)
            du = xB * dt
            if HAS_D:
                du += Dk * g
                dD_acc += tl.sum(g * u, axis=0, keep_dims=True)
            xhb = x * hb
            ddt = xB * u + tl.sum(xhb * A, axis=2, keep_dims=True)
            dA_acc += tl.sum(xhb * dt, axis=0, keep_dims=True)
            if SOFTPLUS:
                ddt = ddt * sigmoid(dt_raw)
            ddt = tl.where(td_mask, ddt, 0.0)
            if HAS_BIAS:
                dbias_acc += tl.sum(ddt, axis=0, keep_dims=True)

            dB = tl.sum(x * du_dt, axis=1, keep_dims=True)                # (BL, 1, BN)
            dC = tl.sum(hs * g, axis=1, keep_dims=True)
            cell = c0 * g1g2 + c1 * g2 + c2
            part = part_base + (cell * N + n)  # (..., cell, n): n contiguous
            tl.store(dB_ptr + part, dB, mask=tn_mask)
            tl.store(dC_ptr + part, dC, mask=tn_mask)

            if SHARED_U:
                du += du_prev
            if SHARED_DT:
                ddt += ddt_prev
            tl.store(du_off, du, mask=td_mask)
            tl.store(ddt_off, ddt, mask=td_mask)

        tl.store(dA_ptr + (pid_b * K + k) * dim * N + st_dn, dA_acc, mask=dn_mask)
        if HAS_D:
            tl.store(dD_ptr + (pid_b * K + k) * dim + d, dD_acc, mask=d_mask)
        if HAS_BIAS:
            tl.store(dbias_ptr + (pid_b * K + k) * dim + d, dbias_acc, mask=d_mask)
        tl.debug_barrier()
