"""Forward routed selective scan kernel, one state index at a time.

The same program layout and merge as ``fwd.py`` (a batch element x a block of channels, all routes in turn,
outputs added in place in route order), but tiles are 2-D (steps x channels): the N states of a channel are
scanned one after another inside the tile, the way the CUDA selective-scan kernels loop over states. A
(steps x channels x states) tile keeps N times more values in registers, which for N = 16 leaves room for
only two programs per SM; the 2-D tile keeps the register count of the N = 1 case for every N.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .common import route_cells, scan_combine, softplus


@triton.jit
def routed_scan_fwd_nloop_kernel(
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
    pid_b = tl.program_id(0).to(tl.int64)  # program bases in 64 bits; offsets inside a batch element 32-bit
    pid_c = tl.program_id(1)
    group = pid_c // nbpg
    d_in_group = (pid_c % nbpg) * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]
    d_mask = d_in_group < gsize
    d = group * gsize + d_in_group                                  # (1, BD)
    n_idx = tl.arange(0, BLOCK_N)[None, :]                          # (1, BN): columns of the carried states
    rows = tl.arange(0, BLOCK_L)[:, None]                           # (BL, 1)
    last_row = rows == BLOCK_L - 1

    for k in range(K):
        length = tl.load(tbl_ptr + k * 15)
        accumulate = tl.load(tbl_ptr + k * 15 + 1)
        finalize = tl.load(tbl_ptr + k * 15 + 2)
        A_row = A_ptr + (k * dim + d) * N                           # (1, BD) pointers; state n at + n
        ct = A_ptr.dtype.element_ty  # fp32, or fp64 for fp64 inputs (the launcher casts A)
        if HAS_D:
            Dk = tl.load(D_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        gate_now = False
        if GATE:
            gate_now = finalize != 0
        # States of all N indices, carried tile to tile: (BD, BN), transposed so a column is a channel row.
        hT = tl.zeros((BLOCK_D, BLOCK_N), dtype=ct)
        u_base = u_ptr + (pid_b * su_b + k * su_k)
        dt_base = dt_ptr + (pid_b * sdt_b + k * sdt_k)
        B_base = B_ptr + (pid_b * sB_b + k * sB_k + group * sB_g)
        C_base = C_ptr + (pid_b * sC_b + k * sC_k + group * sC_g)
        y_base = y_ptr + pid_b * sy_b
        acc_base = acc_ptr + pid_b * sy_b
        z_base = z_ptr + pid_b * sz_b
        st_base = states_ptr + (pid_b * K + k) * nchunk_max * dim * N
        st_dn = tl.reshape(d, (BLOCK_D, 1)) * N + n_idx                 # (BD, BN)
        st_mask = (tl.reshape(d_mask, (BLOCK_D, 1))) & (n_idx < N)
        for c in range(tl.cdiv(length, BLOCK_L)):
            t = c * BLOCK_L + rows
            t_mask = t < length
            c0, c1, c2 = route_cells(cells_ptr, tbl_ptr, k, t, t_mask, lmax, CELLS)
            td_mask = t_mask & d_mask
            if SAVE_STATES:
                tl.store(st_base + (c * dim * N + st_dn), hT, mask=st_mask)
            u = tl.load(u_base + (c0 * su_0 + c1 * su_1 + c2 * su_2 + d * su_d), mask=td_mask,
                        other=0.0).to(ct)                                            # (BL, BD)
            dt = tl.load(dt_base + (c0 * sdt_0 + c1 * sdt_1 + c2 * sdt_2 + d * sdt_d), mask=td_mask,
                         other=0.0).to(ct)
            y_off = c0 * sy_0 + c1 * sy_1 + c2 * sy_2 + d * sy_d
            prev = tl.load(acc_base + y_off, mask=td_mask & (accumulate != 0), other=0.0).to(ct)
            if GATE:
                zv = tl.load(z_base + (c0 * sz_0 + c1 * sz_1 + c2 * sz_2 + d * sz_d), mask=td_mask & gate_now,
                             other=0.0).to(ct)
            B_cell = B_base + (c0 * sB_0 + c1 * sB_1 + c2 * sB_2)                   # (BL, 1)
            C_cell = C_base + (c0 * sC_0 + c1 * sC_1 + c2 * sC_2)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = softplus(dt)
            dt = tl.where(td_mask, dt, 0.0)  # padded steps: decay 1, no input, so the state passes through
            du = dt * u
            y = prev
            if HAS_D:
                y += u * Dk
            for nn in range(N):
                A_n = tl.load(A_row + nn, mask=d_mask, other=0.0)                     # (1, BD)
                B_n = tl.load(B_cell + nn * sB_n, mask=t_mask, other=0.0).to(ct)       # (BL, 1)
                C_n = tl.load(C_cell + nn * sC_n, mask=t_mask, other=0.0).to(ct)
                h_n = tl.reshape(tl.sum(tl.where(n_idx == nn, hT, 0.0), axis=1), (1, BLOCK_D))
                decay_cum, drive_cum = tl.associative_scan((tl.exp(dt * A_n), du * B_n), 0, scan_combine)
                hs = decay_cum * h_n + drive_cum
                y += hs * C_n
                # padded rows repeat the last state, so the tile's last row is the state to carry
                h_last = tl.reshape(tl.sum(tl.where(last_row, hs, 0.0), axis=0), (BLOCK_D, 1))
                hT = tl.where(n_idx == nn, h_last, hT)

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
            tl.store(last_ptr + (pid_b * K + k) * dim * N + st_dn, hT, mask=st_mask)
        # The next route reads cells this route wrote, from other threads of this program.
        tl.debug_barrier()
