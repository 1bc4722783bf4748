"""Pure-PyTorch selective scan: the oracle every kernel is tested against, and the CPU path.

The recurrence, per channel d and state n::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,      y_t = sum_n C_t * h_t  (+ D * u_t)

is evaluated by a chunked scan instead of a Python loop over all L steps: the sequence is cut into
``nc`` chunks of ``T ~ sqrt(L)`` steps. Pass 1 runs every chunk at once from a zero state (a loop over the T
positions, vectorised over chunks) to get each chunk's end state; pass 2 carries the state across chunk
boundaries (a loop over the nc chunks, using each chunk's total decay); pass 3 reruns every chunk from its
true entering state and keeps all states. That is ``2T + nc ~ 3 sqrt(L)`` vectorised multiply-adds, as
stable as the step loop (no exp of a positive number, no division) and differentiable by autograd. The state is kept in fp32 for fp16/bf16/fp32 inputs and in fp64 for fp64 inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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
    decay = torch.exp(delta_tm * A.to(ct).reshape(groups, dim // groups, -1))
    drive = (delta_tm * u_tm) * _time_major_bc(B, groups, ct)
    readout = _time_major_bc(C, groups, ct)
    h0 = None if initial_state is None else initial_state.to(ct).reshape(batch, groups, dim // groups, -1)
    y, last_state = _chunked_scan(decay, drive, h0, readout)                 # (L, b, G, dG), (b, G, dG, N)
    y = y.reshape(length, batch, dim).permute(1, 2, 0)
    last_state = last_state.reshape(batch, dim, -1)
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    if return_last_state:
        return y, last_state
    return y
