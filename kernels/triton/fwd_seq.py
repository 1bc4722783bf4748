"""Forward routed selective scan kernel, steps one after another inside each thread.

The same arguments, program grid and merge as ``fwd_nloop.py`` (a batch element x a block of channels, all
routes in turn, outputs added in place in route order), but no scan across threads: every thread owns one
channel and its N states, and walks the route step by step, as the CUDA selective-scan kernels do inside a
thread. A step costs, per state, one exp, two FMAs and a multiply, with no shuffles, barriers or layout
changes; the inputs of step t + 1 are loaded while step t computes. The parallelism is (batch x channels)
threads, so this kernel pays off when N is large enough to keep each thread busy (Vim, VMamba v0/v1: N = 16)
and the tiled kernels stay for N = 1, where the scan across steps is what gives the GPU enough work.

Each thread holds whole rows: the thread that adds route k's output at a cell wrote the earlier routes' output
at that cell itself (a barrier between routes still guards against the compiler mapping the store and the
later load to different threads; with one warp per program it costs next to nothing). States are saved every BLOCK_L steps in the
layout of the tiled kernels, so the backward kernel is shared.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .common import channel_step_loads, decay, softplus, state_rows, state_vector_load


@triton.jit
def _step_inputs(u_base, dt_base, B_base, C_base, acc_base, z_base, cells_ptr, tbl_ptr, k, t, lmax,
                 su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2,
                 sz_0, sz_1, sz_2, sy_0, sy_1, sy_2,
                 u_d, dt_d, z_d, y_d, B_n, C_n, d_mask, n_mask, accumulate, gate_now,
                 GATE: tl.constexpr, CELLS: tl.constexpr, BC_ALIGN: tl.constexpr):
    """Loads of one step (raw dtypes): u, delta, the running route sum, the gate (channels) and B, C (states)."""
    u, dt, Bt, c0, c1, c2 = channel_step_loads(u_base, dt_base, B_base, cells_ptr, tbl_ptr, k, t, lmax,
                                               su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2,
                                               u_d, dt_d, B_n, d_mask, n_mask, CELLS, BC_ALIGN)
    y_off = (c0 * sy_0 + c1 * sy_1 + c2 * sy_2) + y_d
    prev = tl.load(acc_base + y_off, mask=d_mask & (accumulate != 0), other=0.0)
    zv = prev
    if GATE:
        zv = tl.load(z_base + (c0 * sz_0 + c1 * sz_1 + c2 * sz_2) + z_d, mask=d_mask & gate_now, other=0.0)
    Ct = state_vector_load(C_base, c0, c1, c2, sC_0, sC_1, sC_2, C_n, n_mask, BC_ALIGN)
    return u, dt, prev, zv, Bt, Ct, y_off


@triton.jit
def routed_scan_fwd_seq_kernel(
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
    EVEN_N: tl.constexpr = False, BC_ALIGN: tl.constexpr = 1,
):
    pid_b = tl.program_id(0).to(tl.int64)  # program bases in 64 bits; offsets inside a batch element 32-bit
    pid_c = tl.program_id(1)
    group = pid_c // nbpg
    d_in_group = (pid_c % nbpg) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = d_in_group < gsize
    d = group * gsize + d_in_group                                  # (BD,): one channel per thread
    n = tl.arange(0, BLOCK_N)
    if EVEN_N:  # N == BLOCK_N: no state mask, so B / C rows load as whole vectors
        n_mask = n < BLOCK_N
    else:
        n_mask = n < N
    # (states, channels) tiles: channels across the lanes, each thread's N states in its registers
    dn_mask = n_mask[:, None] & d_mask[None, :]
    st_dn = d[None, :] * N + n[:, None]                             # (BN, BD)
    ct = A_ptr.dtype.element_ty  # fp32, or fp64 for fp64 inputs (the launcher casts A)
    u_d, dt_d, z_d, y_d = d * su_d, d * sdt_d, d * sz_d, d * sy_d
    B_n, C_n = n * sB_n, n * sC_n

    for k in range(K):
        length = tl.load(tbl_ptr + k * 15)
        accumulate = tl.load(tbl_ptr + k * 15 + 1)
        finalize = tl.load(tbl_ptr + k * 15 + 2)
        A, _unscale = state_rows(A_ptr, k, N, dim, d, d_mask, n[:, None], BLOCK_N, BLOCK_N, BLOCK_D)  # (BN, BD)
        if HAS_D:
            Dk = tl.load(D_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * dim + d, mask=d_mask, other=0.0).to(ct)
        gate_now = False
        if GATE:
            gate_now = finalize != 0
        u_base = u_ptr + (pid_b * su_b + k * su_k)
        dt_base = dt_ptr + (pid_b * sdt_b + k * sdt_k)
        B_base = B_ptr + tl.multiple_of(pid_b * sB_b + k * sB_k + group * sB_g, BC_ALIGN)
        C_base = C_ptr + tl.multiple_of(pid_b * sC_b + k * sC_k + group * sC_g, BC_ALIGN)
        y_base = y_ptr + pid_b * sy_b
        acc_base = acc_ptr + pid_b * sy_b
        z_base = z_ptr + pid_b * sz_b
        st_base = states_ptr + (pid_b * K + k) * nchunk_max * dim * N
        h = tl.zeros((BLOCK_N, BLOCK_D), dtype=ct)
        u, dt, prev, zv, Bt, Ct, y_off = _step_inputs(
            u_base, dt_base, B_base, C_base, acc_base, z_base, cells_ptr, tbl_ptr, k, 0, lmax,
            su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2, sz_0, sz_1, sz_2,
            sy_0, sy_1, sy_2, u_d, dt_d, z_d, y_d, B_n, C_n, d_mask, n_mask, accumulate, gate_now, GATE, CELLS, BC_ALIGN)
        for t in range(length):
            # the next step's loads go out before this step's arithmetic (the last step reloads itself)
            nu, ndt, nprev, nzv, nB, nC, ny_off = _step_inputs(
                u_base, dt_base, B_base, C_base, acc_base, z_base, cells_ptr, tbl_ptr, k,
                tl.minimum(t + 1, length - 1), lmax,
                su_0, su_1, su_2, sdt_0, sdt_1, sdt_2, sB_0, sB_1, sB_2, sC_0, sC_1, sC_2, sz_0, sz_1, sz_2,
                sy_0, sy_1, sy_2, u_d, dt_d, z_d, y_d, B_n, C_n, d_mask, n_mask, accumulate, gate_now, GATE,
                CELLS, BC_ALIGN)
            if SAVE_STATES:
                if t % BLOCK_L == 0:  # the state entering each BLOCK_L tile, as the backward kernel expects
                    tl.store(st_base + (t // BLOCK_L) * dim * N + st_dn, h, mask=dn_mask)
            uc = u.to(ct)
            dtc = dt.to(ct)
            if HAS_BIAS:
                dtc = dtc + bias
            if SOFTPLUS:
                dtc = softplus(dtc)
            h = decay(dtc, A) * h + (dtc * uc)[None, :] * Bt.to(ct)[:, None]
            y = tl.sum(h * Ct.to(ct)[:, None], axis=0) + prev.to(ct)
            if HAS_D:
                y += uc * Dk
            if GATE:
                if gate_now:
                    if SEPARATE_ACC:  # the ungated sum is kept for the backward pass
                        tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=d_mask)
                    zc = zv.to(ct)
                    tl.store(y_base + y_off, (y * zc / (1.0 + tl.exp(-zc))).to(y_ptr.dtype.element_ty),
                             mask=d_mask)
                else:
                    tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=d_mask)
            else:
                tl.store(acc_base + y_off, y.to(acc_ptr.dtype.element_ty), mask=d_mask)
            u, dt, prev, zv, Bt, Ct, y_off = nu, ndt, nprev, nzv, nB, nC, ny_off
        if WRITE_LAST:
            tl.store(last_ptr + (pid_b * K + k) * dim * N + st_dn, h, mask=dn_mask)
        tl.debug_barrier()
