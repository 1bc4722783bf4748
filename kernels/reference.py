"""Pure-PyTorch selective scan: the oracle every kernel is tested against, and the CPU path.

The recurrence, per channel d and state n::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,      y_t = sum_n C_t * h_t  (+ D * u_t)

is evaluated by a chunked scan instead of a Python loop over all L steps: the sequence is cut into
``nc`` chunks of ``T ~ sqrt(L)`` steps. Pass 1 runs every chunk at once from a zero state (a loop over the T
positions, vectorised over chunks) to get each chunk's end state; pass 2 carries the state across chunk
boundaries (a loop over the nc chunks, using each chunk's total decay); pass 3 reruns every chunk from its
true entering state and keeps all states. That is ``2T + nc ~ 3 sqrt(L)`` vectorised multiply-adds, as
stable as the step loop (no exp of a positive number, no division) and differentiable by autograd. The state is kept in fp32 for fp16/bf16/fp32 inputs and in fp64 for fp64 inputs.

On CPU in eager mode ``selective_scan_ref`` runs the same recurrence blocked instead (``_BlockedScan``): the
sequence is cut into blocks sized to the cache, each block goes through every pass (decay, drive, scan, readout)
before the next, only the state is carried between blocks, and the backward pass is written out (the adjoint
scan, run backwards over the blocks, recomputing each block's states from its saved entry state). No
(L, ..., N) tensor is materialised, which is what made the chunked form slower than a step loop at N = 16.
The arithmetic is the step loop's (same multiply-adds, no division, no exp of a positive number); the tests
check it against the step loop, gradcheck it in fp64, and compare it with the chunked form. Compilers, tracers
and exporters, and GPUs, get the chunked form.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["linear_scan_ref", "selective_scan_ref", "compute_dtype"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the state is kept in: fp64 stays fp64, everything else accumulates in fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _chunk_size(length: int) -> int:
    return max(1, int(math.ceil(math.sqrt(length))))


def _chunked_scan(decay, inp, initial_state, readout):
    """Time-major core of the scan (axis 0 is time). Returns (per-step outputs, last state): the outputs are
    all states, or ``sum(states * readout, -1)`` when ``readout`` (broadcastable, time-major) is given; then
    the states are never stored whole, which keeps the working set small for large N.

    The first ``nc * T`` steps run as chunks (views, no copies); the ``length - nc * T < T`` steps left over
    run as a plain tail from the last carry.
    """
    length = decay.shape[0]
    T = _chunk_size(length)
    nc = length // T
    main = nc * T

    def chunked(x):
        if x is None or x.shape[0] == 1:        # broadcast along time
            return None if x is None else x.unsqueeze(0)
        return x[:main].reshape((nc, T) + x.shape[1:])

    dec, drv, rd = chunked(decay), chunked(inp), chunked(readout)

    # Pass 1: each chunk's end state from a zero start, and its total decay.
    h = torch.zeros_like(drv[:, 0])
    for t in range(T):
        h = torch.addcmul(drv[:, t], dec[:, t], h)
    chunk_decay = dec.prod(dim=1)

    # Pass 2: the state entering each chunk (h_{-1} for the first one).
    carry = torch.zeros_like(h[0]) if initial_state is None else initial_state.to(h.dtype)
    carries = []
    for c in range(nc):
        carries.append(carry)
        carry = torch.addcmul(h[c], chunk_decay[c], carry)

    def read(state, r):
        return state if r is None else (state * r).sum(-1)

    # Pass 3: rerun every chunk from its true entering state.
    h = torch.stack(carries, 0)
    outputs = []
    for t in range(T):
        h = torch.addcmul(drv[:, t], dec[:, t], h)
        outputs.append(read(h, None if rd is None else rd[:, t if rd.shape[1] > 1 else 0]))
    outputs = torch.stack(outputs, 1)
    outputs = outputs.reshape((main,) + outputs.shape[2:])
    last = h[-1]

    # Tail: the steps after the last whole chunk.
    tail = []
    for t in range(main, length):
        last = torch.addcmul(inp[t], decay[t], last)
        tail.append(read(last, None if readout is None else readout[t if readout.shape[0] > 1 else 0]))
    if tail:
        outputs = torch.cat([outputs, torch.stack(tail, 0)], 0)
    return outputs, last


# ---- Blocked CPU path ---------------------------------------------------------------------------------------

# Elements of one block buffer, (steps x state) for the inner blocks and (steps x batch*dim) for the outer ones:
# 1 MiB of fp32, so a block's buffers stay in the L3 cache while every pass runs over them, and the per-op call
# overhead is spread over enough elements. Measured on a 2-core EPYC (notes/foundation.md): 2**16 was up to 40%
# slower (overhead), larger blocks no better beyond noise. The workspace keeps at most _WORKSPACE_CAP elements per
# thread between calls (16 MiB of fp32).
_BLOCK_ELEMS = 1 << 18
_OUTER_ELEMS = 1 << 18
_WORKSPACE_CAP = 1 << 22
_workspace = threading.local()


def _scan_into(dec, inp, init, out, reverse=False):
    """``out[t] = dec[t] * prev + inp[t]`` along axis 0, where prev is ``out[t-1]`` (``init`` at t = 0), or with
    ``reverse`` ``out[t+1]`` (``init`` after the last step). ``dec``, ``inp`` and ``out`` have one shape, ``init``
    that shape without axis 0; ``out`` is written in place.

    Run step by step when the rows are long, as the chunked form of :func:`_chunked_scan` when they are short
    and the per-op call overhead (microseconds, a few thousand elements' worth) would dominate. Row views come
    from ``unbind``: indexing a tensor in the loop costs about as much as the op itself.
    """
    n = dec.shape[0]
    T = _chunk_size(n)
    nc = n // T
    if nc < 2 or n * _OP_OVERHEAD < (2 * T + nc + 4) * _OP_OVERHEAD + 2 * dec.numel():
        _steps(dec.unbind(0), inp.unbind(0), init, out.unbind(0), range(n - 1, -1, -1) if reverse else range(n))
        return
    main = nc * T
    lo = n - main if reverse else 0                       # the chunked part; the rest runs as a plain tail
    d = dec[lo:lo + main].view((nc, T) + dec.shape[1:])
    x = inp[lo:lo + main].view(d.shape)
    o = out[lo:lo + main].view(d.shape)
    dc, xc, oc = d.unbind(1), x.unbind(1), o.unbind(1)
    order = range(T - 1, -1, -1) if reverse else range(T)
    # Pass 1: each chunk's end state from a zero start, and its total decay.
    first, *rest = order
    h = xc[first].clone()
    for t in rest:
        torch.addcmul(xc[t], dc[t], h, out=h)
    P = d.prod(dim=1)
    # Pass 2: the state entering each chunk.
    E = torch.empty_like(h)
    Er, hr, Pr = E.unbind(0), h.unbind(0), P.unbind(0)
    carry = init
    for c in (range(nc - 1, -1, -1) if reverse else range(nc)):
        Er[c].copy_(carry)
        carry = torch.addcmul(hr[c], Pr[c], Er[c])
    # Pass 3: rerun every chunk from its entering state.
    _steps(dc, xc, E, oc, order)
    # Tail: the steps outside the chunks (before them when reversed).
    left = n - main
    if left and reverse:
        _steps(dec[:left].unbind(0), inp[:left].unbind(0), out[left], out[:left].unbind(0), range(left - 1, -1, -1))
    elif left:
        _steps(dec[main:].unbind(0), inp[main:].unbind(0), out[main - 1], out[main:].unbind(0), range(left))


# One torch op's call overhead, in elements of work it costs as much as (~2 us against ~0.3 ns an element).
_OP_OVERHEAD = 6000


def _steps(dec, inp, prev, out, order):
    """out[t] = dec[t] * prev + inp[t] for t in order, over sequences of row views."""
    for t in order:
        torch.addcmul(inp[t], dec[t], prev, out=out[t])
        prev = out[t]


def _time_major_rows(x):
    """(batch, G, N, L) -> contiguous (L, batch, G, N); fixed (dim, N) B/C pass through unchanged."""
    return x if x.dim() == 2 else x.permute(3, 0, 1, 2).contiguous()


def _transpose_into(dst, src):
    """``dst.copy_(src)`` for a 2-D ``src`` that is the transpose of a contiguous matrix, ``dst`` contiguous:
    torch copies that case with a cache-blocked kernel, several times faster than a strided copy, which is why
    every layout change here goes through a contiguous staging buffer."""
    dst.copy_(src)


def _workspace_buffer(like, used, shape):
    """A scratch tensor at offset ``used`` of this thread's workspace. Freshly allocated memory costs a page fault
    per 4 KiB on first touch, more than the arithmetic done on it here, so the block buffers are kept between
    calls (up to _WORKSPACE_CAP elements; larger requests are allocated per call). Buffers of one call never
    overlap: a pool that grows mid-call leaves the earlier buffers in the old one, alive through their views."""
    end = used + math.prod(shape)
    # Tensors made under inference_mode cannot be written in place outside it: one pool per mode.
    key = (like.dtype, like.device, torch.is_inference_mode_enabled())
    pool = getattr(_workspace, "pool", None)
    if pool is None or pool[0] != key or pool[1].numel() < end:
        if end > _WORKSPACE_CAP:
            return like.new_empty(shape), used
        pool = (key, like.new_empty(end))
        _workspace.pool = pool
    return pool[1][used:end].view(shape), end


class _Block:
    """Buffers for the blocked scan, and the layout changes between the channel-first (batch, dim, L) tensors
    and time-major blocks. Two levels: outer blocks of ``Lo`` steps hold per-channel rows (R = batch * dim),
    inner blocks of ``Lb`` steps (dividing Lo) hold states (batch, G, dG, N); with N > 1 an inner block is
    N times smaller, and the layout changes still read long contiguous rows."""

    def __init__(self, like, length, st):
        batch, G, dG, N = st
        self.st, self.R, self.like, self.used = st, batch * G * dG, like, 0
        S = self.R * N
        self.Lb = max(1, min(length, _BLOCK_ELEMS // S))
        self.Lo = self.Lb * max(1, min(-(-length // self.Lb), _OUTER_ELEMS // (self.Lb * self.R)))
        self.outer = [(T0, min(length, T0 + self.Lo)) for T0 in range(0, length, self.Lo)]
        self.inner = [[(t0, min(T1, t0 + self.Lb)) for t0 in range(T0, T1, self.Lb)] for T0, T1 in self.outer]
        Lo, Lb = self.Lo, self.Lb
        self.stage = self.buffer(Lo * self.R)
        self.stage2 = self.buffer(Lo * self.R)
        self.dT = self.buffer(Lo, self.R)            # delta, time-major
        self.xu = self.buffer(Lo, self.R)            # delta * u, time-major
        self.a = self.buffer(Lb + 1, *st)            # a[Lb]: the next block's first decay, in the backward pass
        self.x = self.buffer(Lb, *st)
        self.H = self.buffer(Lb + 1, *st)            # H[0]: the state entering the block, H[t+1]: after step t

    def buffer(self, *shape):
        out, self.used = _workspace_buffer(self.like, self.used, shape)
        return out

    def col(self, t, lo, n):
        """Rows lo:lo+n of a time-major (Lo, R) buffer, viewed to broadcast against the state (n, b, G, dG, 1)."""
        return t[lo:lo + n].view((n,) + self.st[:3] + (1,))

    def cf(self, n, which=0):
        """A staging buffer as (batch, dim, n), channel-first."""
        buf = self.stage if which == 0 else self.stage2
        return buf[:n * self.R].view(self.st[0], -1, n)

    def to_time_major(self, dst, n, which=0):
        """dst[:n] (n, R) <- the staging buffer (R, n)."""
        _transpose_into(dst[:n], self.cf(n, which).reshape(self.R, n).t())

    def to_channel_first(self, src, n, which=0):
        """The staging buffer (batch, dim, n) <- src[:n] (n, R); returns the staging view."""
        st = self.cf(n, which)
        _transpose_into(st.view(self.R, n), src[:n].view(n, self.R).t())
        return st

    def stage_inputs(self, u, delta, T0, T1):
        """delta and delta * u for steps T0:T1, time-major, into dT and xu."""
        n = T1 - T0
        self.cf(n).copy_(delta[:, :, T0:T1])
        self.to_time_major(self.dT, n)
        torch.mul(delta[:, :, T0:T1], u[:, :, T0:T1], out=self.cf(n))
        self.to_time_major(self.xu, n)

    def decay_drive(self, A5, Bt, t0, t1, lo):
        """a = exp(delta A) and x = delta u B for steps t0:t1 (rows lo: of the staged outer block)."""
        n = t1 - t0
        torch.mul(self.col(self.dT, lo, n), A5, out=self.a[:n])
        self.a[:n].exp_()
        torch.mul(self.col(self.xu, lo, n), _bc_rows(Bt, t0, t1, self.st), out=self.x[:n])



def _blocked_setup(u, A, B, C, groups):
    """What the blocked forward and backward both start from: sizes, the (batch, groups, dim / groups, N) state
    shape, A in that shape, time-major B / C rows and the block buffers."""
    batch, dim, length = u.shape
    N = A.shape[1]
    st = (batch, groups, dim // groups, N)
    return (batch, dim, length, N, st, A.reshape(st[1:]), _time_major_rows(B), _time_major_rows(C),
            _Block(u, length, st))

class _BlockedScan(torch.autograd.Function):
    """The selective scan core ``y_t = sum_n C_t h_t`` with ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``,
    run over blocks: every pass of a block (layout change in, decay, drive, scan, readout, layout change out)
    runs while the block's buffers are in cache, the state is carried to the next block, and no (L, ..., N)
    tensor is ever allocated (fresh pages cost more than the arithmetic here). The backward pass recomputes each
    block's states from the saved block-entry state, walks the blocks in reverse with the adjoint scan
    ``g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}``, and reduces the gradients block by block.

    u, delta: (batch, dim, L) in the compute dtype; A: (dim, N); B, C: (dim, N) fixed or (batch, G, N, L);
    h0: (batch, dim, N) or None. Returns y (batch, dim, L) and the last state (batch, dim, N).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0, groups):
        batch, dim, length, N, st, A5, Bt, Ct, k = _blocked_setup(u, A, B, C, groups)
        yT = k.buffer(k.Lo, k.R) if N > 1 else None
        y = u.new_empty(batch, dim, length)
        entries = u.new_empty((sum(map(len, k.inner)),) + st)
        H = k.H
        if h0 is None:
            H[0].zero_()
        else:
            H[0].copy_(h0.reshape(st))
        i = 0
        for (T0, T1), inner in zip(k.outer, k.inner):
            k.stage_inputs(u, delta, T0, T1)
            for t0, t1 in inner:
                n = t1 - t0
                entries[i].copy_(H[0])
                i += 1
                k.decay_drive(A5, Bt, t0, t1, t0 - T0)
                _scan_into(k.a[:n], k.x[:n], H[0], H[1:n + 1])
                if N == 1:      # back to channel-first first, then one product written straight into y
                    h = k.to_channel_first(H[1:n + 1], n).view(batch, groups, -1, n)
                    c = C.view(st[1:3]).unsqueeze(-1) if C.dim() == 2 else C[..., t0:t1]
                    torch.mul(h, c, out=y.view(batch, groups, -1, length)[..., t0:t1])
                else:
                    _contract_n(H[1:n + 1], _bc_rows(Ct, t0, t1, st), yT[t0 - T0:t1 - T0], k.x[:n])
                H[0].copy_(H[n])
            if N > 1:
                y[:, :, T0:T1].copy_(k.to_channel_first(yT, T1 - T0))
        ctx.save_for_backward(u, delta, A, B, C, entries)
        ctx.meta = (groups, h0 is not None)
        return y, H[0].reshape(batch, dim, N).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, glast):
        u, delta, A, B, C, entries = ctx.saved_tensors
        groups, has_h0 = ctx.meta
        batch, dim, length, N, st, A5, Bt, Ct, k = _blocked_setup(u, A, B, C, groups)
        a, x, H = k.a, k.x, k.H
        gT = k.buffer(k.Lo, k.R)                     # dy, then v = sum_n g B
        e = k.buffer(k.Lo, k.R)                      # sum_n s A
        g = k.buffer(k.Lb, *st)
        s = k.buffer(k.Lb, *st)
        du = torch.empty_like(u)
        ddelta = torch.empty_like(u)
        dA = torch.zeros_like(A5)
        dBt = torch.zeros_like(Bt) if Bt.dim() == 2 else torch.empty_like(Bt)
        dCt = torch.zeros_like(Ct) if Ct.dim() == 2 else torch.empty_like(Ct)
        gnext = glast.reshape(st).clone()
        anext = u.new_ones(st)
        i = len(entries)
        for (T0, T1), inner in zip(reversed(k.outer), reversed(k.inner)):
            k.stage_inputs(u, delta, T0, T1)
            k.cf(T1 - T0).copy_(gy[:, :, T0:T1])
            k.to_time_major(gT, T1 - T0)
            for t0, t1 in reversed(inner):
                n, lo = t1 - t0, t0 - T0
                i -= 1
                # Recompute the block's states from its entry state.
                k.decay_drive(A5, Bt, t0, t1, lo)
                H[0].copy_(entries[i])
                _scan_into(a[:n], x[:n], H[0], H[1:n + 1])
                # Adjoint scan g_t = q_t + a_{t+1} g_{t+1}, q_t = C_t dy_t; a[n] is the next block's first decay.
                gy5 = k.col(gT, lo, n)
                torch.mul(gy5, _bc_rows(Ct, t0, t1, st), out=x[:n])
                a[n].copy_(anext)
                _scan_into(a[1:n + 1], x[:n], gnext, g[:n], reverse=True)
                gnext.copy_(g[0])
                anext.copy_(a[0])
                # dC_t: dy_t h_t summed over the channels C is shared by.
                _reduce_channels(H[1:n + 1], gy5, dCt, t0, t1, s[:n])
                # Through the decay, s_t = g_t h_{t-1} a_t: ddelta gets e = sum_n s_t A, dA gets sum_(b,t) s_t delta_t.
                torch.mul(g[:n], H[:n], out=s[:n])
                s[:n].mul_(a[:n])
                _contract_n(s[:n], A5, e[lo:lo + n], x[:n])
                s[:n].mul_(k.col(k.dT, lo, n))
                dA.add_(s[:n].sum((0, 1)))
                # Through the drive x_t = delta_t u_t B_t: with v = sum_n g_t B_t, du = v delta and ddelta += v u;
                # dB_t is g_t delta_t u_t summed over the channels B is shared by.
                _contract_n(g[:n], _bc_rows(Bt, t0, t1, st), gT[lo:lo + n], x[:n])
                _reduce_channels(g[:n], k.col(k.xu, lo, n), dBt, t0, t1, s[:n])
            v = k.to_channel_first(gT, T1 - T0, 0)
            ecf = k.to_channel_first(e, T1 - T0, 1)
            torch.mul(v, delta[:, :, T0:T1], out=du[:, :, T0:T1])
            torch.addcmul(ecf, v, u[:, :, T0:T1], out=ddelta[:, :, T0:T1])
        dh0 = (anext * gnext).reshape(batch, dim, N) if has_h0 else None
        dB = dBt if B.dim() == 2 else dBt.permute(1, 2, 3, 0)
        dC = dCt if C.dim() == 2 else dCt.permute(1, 2, 3, 0)
        return du, ddelta, dA.reshape(dim, N), dB, dC, dh0, None


def _contract_n(h, w, out, scratch):
    """out (n, R) = sum over N of h * w, for a block of states h (n, batch, G, dG, N) and w broadcastable to it.
    (A product and a sum beat a batched matrix-vector product here: the vectors are N long.)"""
    if h.shape[-1] == 1:
        torch.mul(h, w, out=out.view(h.shape))
    else:
        torch.mul(h, w, out=scratch)
        torch.sum(scratch, -1, out=out.view(h.shape[:-1]))


def _bc_rows(Xt, t0, t1, st):
    """B or C for steps t0:t1, broadcastable against the block state (n, batch, G, dG, N)."""
    if Xt.dim() == 2:
        return Xt.reshape(st[1:])
    return Xt[t0:t1].unsqueeze(3)


def _reduce_channels(h, w, dXt, t0, t1, scratch):
    """The gradient of a B or C: h * w (n, batch, G, dG, N; w has no N axis) summed over what B/C broadcast
    across, the channels of a group (time-varying, written to rows t0:t1) or steps and batch (fixed, added)."""
    torch.mul(h, w, out=scratch)
    if dXt.dim() == 2:
        dXt.add_(scratch.sum((0, 1)).reshape(dXt.shape))
    else:
        torch.sum(scratch, 3, out=dXt[t0:t1])


def linear_scan_ref(decay: torch.Tensor, inp: torch.Tensor, initial_state: torch.Tensor | None = None,
                    dim: int = 0) -> torch.Tensor:
    """All states of ``h_t = decay_t * h_{t-1} + inp_t`` along axis ``dim`` (h_{-1} = initial_state or 0).

    ``decay`` and ``inp`` broadcast to one shape; ``initial_state`` has that shape without ``dim``. Works
    for real and complex tensors. Returns a tensor of the broadcast shape. Fastest with ``dim=0`` on
    contiguous tensors: every vectorised step then reads whole contiguous rows.
    """
    decay, inp = torch.broadcast_tensors(decay, inp)
    dim = dim % decay.dim()
    states, _ = _chunked_scan(decay.movedim(dim, 0), inp.movedim(dim, 0), initial_state, None)
    return states.movedim(0, dim)


def _time_major_bc(x: torch.Tensor, groups: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C broadcastable against the grouped time-major state (L, batch, G, dim/G, N), without copies."""
    x = x.to(dtype)
    if x.dim() == 2:                                  # (dim, N): fixed over time and batch
        return x.reshape(1, 1, groups, -1, x.shape[-1])
    if x.dim() == 3:                                  # (batch, N, L): shared by all channels
        return x.permute(2, 0, 1)[:, :, None, None, :]
    if x.shape[1] != groups:                          # B and C grouped differently: refine to the common groups
        x = x.repeat_interleave(groups // x.shape[1], dim=1)
    return x.permute(3, 0, 1, 2).unsqueeze(3)         # (batch, G, N, L) -> (L, batch, G, 1, N)


def _blocked_path(u: torch.Tensor) -> bool:
    """The blocked scan is the CPU path in eager mode. Compilers, tracers and exporters get the chunked scan, which
    is plain differentiable tensor code; on GPUs its few large ops also beat many small ones."""
    if u.device.type != "cpu" or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    return not torch.compiler.is_compiling()


def _grouped_or_fixed(x: torch.Tensor, groups: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C as (dim, N) fixed or (batch, groups, N, L), the two forms the blocked scan takes."""
    x = x.to(dtype)
    if x.dim() == 3:
        return x.unsqueeze(1).expand(-1, groups, -1, -1) if groups > 1 else x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] != groups:
        return x.repeat_interleave(groups // x.shape[1], dim=1)
    return x


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None):
    """One-route selective scan with mamba_ssm's argument names, shapes and semantics.

    u, delta: (batch, dim, L); A: (dim, N); B, C: (dim, N), (batch, N, L) or (batch, G, N, L);
    D, delta_bias: (dim,); z: (batch, dim, L); initial_state: (batch, dim, N) or None.
    Returns y (batch, dim, L) in u's dtype, and the last state (batch, dim, N) in the compute dtype
    if ``return_last_state``. Arguments are not validated here (see ``vssm.kernels.selective_scan``).
    """
    dtype_in = u.dtype
    ct = compute_dtype(dtype_in)
    u = u.to(ct)
    delta = delta.to(ct)
    if delta_bias is not None:
        delta = delta + delta_bias.to(ct)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    # Channels split as (G, dim/G) so grouped B/C broadcast instead of being copied per channel; tensors are
    # built time-major (L, batch, G, dim/G, N) so every vectorised step of the scan reads contiguous rows.
    groups = math.lcm(*(x.shape[1] for x in (B, C) if x.dim() == 4), 1)   # divides dim, as each count does
    split = (length, batch, groups, dim // groups)
    delta_tm = delta.permute(2, 0, 1).reshape(split).unsqueeze(-1)           # (L, b, G, dG, 1)
    u_tm = u.permute(2, 0, 1).reshape(split).unsqueeze(-1)
    if _blocked_path(u):
        Bn, Cn = (_grouped_or_fixed(x, groups, ct) for x in (B, C))
        h0 = None if initial_state is None else initial_state.to(ct)
        y, last_state = _BlockedScan.apply(u, delta, A.to(ct), Bn, Cn, h0, groups)
        return _finish(y, last_state, u, D, z, dtype_in, return_last_state)
    decay = torch.exp(delta_tm * A.to(ct).reshape(groups, dim // groups, -1))
    drive = (delta_tm * u_tm) * _time_major_bc(B, groups, ct)
    readout = _time_major_bc(C, groups, ct)
    h0 = None if initial_state is None else initial_state.to(ct).reshape(batch, groups, dim // groups, -1)
    y, last_state = _chunked_scan(decay, drive, h0, readout)                 # (L, b, G, dG), (b, G, dG, N)
    y = y.reshape(length, batch, dim).permute(1, 2, 0)
    last_state = last_state.reshape(batch, dim, -1)
    return _finish(y, last_state, u, D, z, dtype_in, return_last_state)


def _finish(y, last_state, u, D, z, dtype_in, return_last_state):
    ct = y.dtype
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    if return_last_state:
        return y, last_state
    return y
