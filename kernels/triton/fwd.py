"""Forward routed selective scan kernel.

One program owns one batch element and one block of channels (inside one B/C group) and runs every route in
turn. For route k it walks the route's steps in tiles of BLOCK_L, computes each step's grid cell from the
route table, loads u, delta, B, C there from the tensors as they lie (any strides), runs the recurrence on
the tile with an associative scan, carries the state to the next tile, and adds the tile's output into y at
the same cells. Because routes are run one after another by the same program, the adds are ordered: the
result is deterministic, and no per-route output or merge pass exists.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .common import route_cells, scan_combine, softplus


@triton.jit
def routed_scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    y_ptr, acc_ptr, last_ptr, states_ptr, tbl_ptr, cells_ptr,
    K, dim, N, gsize, nbpg, nchunk_max, lmax,
    su_b, su_k, su_d, su_0, su_1, su_2,
    sdt_b, sdt_k, sdt_d, sdt_0, sdt_1, sdt_2,
    sB_b, sB_k, sB_g, sB_n, sB_0, sB_1, sB_2,
    sC_b, sC_k, sC_g, sC_n, sC_0, sC_1, sC_2,
    sz_b, sz_d, sz_0, sz_1, sz_2,
    sy_b, sy_d, sy_0, sy_1, sy_2,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    GATE: tl.constexpr, SEPARATE_ACC: tl.constexpr, SAVE_STATES: tl.constexpr, WRITE_LAST: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CELLS: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)  # program bases in 64 bits: batch x channels x cells can pass 2**31
    pid_c = tl.program_id(1)
    group = pid_c // nbpg
    # Every tile is built directly in 3-D (steps, channels, states) so that loads, the scan and the stores
    # share one register layout (no shared-memory layout conversions inside the loop). Offsets inside one
    # batch element stay 32-bit (the launcher checks they fit): half the registers of 64-bit ones, and
    # registers decide how many programs an SM can keep in flight.
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
        finalize = tl.load(tbl_ptr + k * 15 + 2)
        A = tl.load(A_ptr + (k * dim + d) * N + n, mask=dn_mask, other=0.0)    # (1, BD, BN)
        ct = A.dtype  # fp32, or fp64 for fp64 inputs (the launcher casts A)
        if HAS_D:
            Dk = tl.load(D_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        gate_now = False
        if GATE:
            gate_now = finalize != 0
        h = tl.zeros((1, BLOCK_D, BLOCK_N), dtype=ct)
        u_base = u_ptr + (pid_b * su_b + k * su_k)
        dt_base = dt_ptr + (pid_b * sdt_b + k * sdt_k)
        B_base = B_ptr + (pid_b * sB_b + k * sB_k + group * sB_g)
        C_base = C_ptr + (pid_b * sC_b + k * sC_k + group * sC_g)
        y_base = y_ptr + pid_b * sy_b
        acc_base = acc_ptr + pid_b * sy_b
        z_base = z_ptr + pid_b * sz_b
        st_base = states_ptr + (pid_b * K + k) * nchunk_max * dim * N
        u_d, dt_d, y_d, z_d = d * su_d, d * sdt_d, d * sy_d, d * sz_d
        B_n, C_n, st_dn = n * sB_n, n * sC_n, d * N + n
        for c in range(tl.cdiv(length, BLOCK_L)):
            t = c * BLOCK_L + rows
            t_mask = t < length
            c0, c1, c2 = route_cells(cells_ptr, tbl_ptr, k, t, t_mask, lmax, CELLS)
            if SAVE_STATES:
                tl.store(st_base + (c * dim * N + st_dn), h, mask=dn_mask)
            td_mask = t_mask & d_mask
            tn_mask = t_mask & n_mask
            # Every load of the tile is issued before any arithmetic: one memory round trip per tile.
            u = tl.load(u_base + (c0 * su_0 + c1 * su_1 + c2 * su_2 + u_d), mask=td_mask,
                        other=0.0).to(ct)                                            # (BL, BD, 1)
            dt = tl.load(dt_base + (c0 * sdt_0 + c1 * sdt_1 + c2 * sdt_2 + dt_d), mask=td_mask,
                         other=0.0).to(ct)
            Bt = tl.load(B_base + (c0 * sB_0 + c1 * sB_1 + c2 * sB_2 + B_n), mask=tn_mask,
                         other=0.0).to(ct)                                           # (BL, 1, BN)
            Ct = tl.load(C_base + (c0 * sC_0 + c1 * sC_1 + c2 * sC_2 + C_n), mask=tn_mask,
                         other=0.0).to(ct)
            y_off = c0 * sy_0 + c1 * sy_1 + c2 * sy_2 + y_d
            # Cells an earlier route already wrote: their sum so far (a masked-off load moves no bytes).
            prev = tl.load(acc_base + y_off, mask=td_mask & (accumulate != 0), other=0.0).to(ct)
            if GATE:
                zv = tl.load(z_base + (c0 * sz_0 + c1 * sz_1 + c2 * sz_2 + z_d), mask=td_mask & gate_now,
                             other=0.0).to(ct)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = softplus(dt)
            dt = tl.where(td_mask, dt, 0.0)  # padded steps: decay 1, no input, so the state passes through
            decay = tl.exp(dt * A)
            drive = (dt * u) * Bt
            decay_cum, drive_cum = tl.associative_scan((decay, drive), 0, scan_combine)
            hs = decay_cum * h + drive_cum
            y = tl.sum(hs * Ct, axis=2, keep_dims=True) + prev                        # (BL, BD, 1)
            if HAS_D:
                y += u * Dk
            # Padded rows repeat the last state, so the tile's last row is the state to carry.
            h = tl.sum(tl.where(rows == BLOCK_L - 1, hs, 0.0), axis=0, keep_dims=True)

            if GATE:
                if gate_now:
                    if SEPARATE_ACC:  # the ungated sum is kept for the backward pass
                        tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=td_mask)
                    tl.store(y_base + y_off, (y * zv / (1.0 + tl.exp(-zv))).to(y_ptr.dtype.element_ty),
                             mask=td_mask)
                else:
                    tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=td_mask)
            else:
                tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=td_mask)
        if WRITE_LAST:
            tl.store(last_ptr + (pid_b * K + k) * dim * N + st_dn, h, mask=dn_mask)
        # The next route reads cells this route wrote, from other threads of this program.
        tl.debug_barrier()
