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


def linear_scan_ref(decay: torch.Tensor, inp: torch.Tensor, initial_state: torch.Tensor | None = None,
                    dim: int = 0) -> torch.Tensor:
    """All states of ``h_t = decay_t * h_{t-1} + inp_t`` along axis ``dim`` (h_{-1} = initial_state or 0).

    ``decay`` and ``inp`` broadcast to one shape; ``initial_state`` has that shape without ``dim``. Works
    for real and complex tensors. Returns a tensor of the broadcast shape. Fastest with ``dim=0`` on
    contiguous tensors: every vectorised step then reads whole contiguous rows.
    """
    decay, inp = torch.broadcast_tensors(decay, inp)
    dim = dim % decay.dim()
    decay = decay.movedim(dim, 0)
    inp = inp.movedim(dim, 0)
    length = decay.shape[0]
    T = _chunk_size(length)
    nc = -(-length // T)
    pad = nc * T - length
    if pad:
        decay = torch.cat([decay, decay.new_ones((pad,) + decay.shape[1:])], 0)
        inp = torch.cat([inp, inp.new_zeros((pad,) + inp.shape[1:])], 0)
    decay = decay.reshape((nc, T) + decay.shape[1:])
    inp = inp.reshape((nc, T) + inp.shape[1:])

    # Pass 1: each chunk's end state from a zero start, and its total decay.
    h = torch.zeros_like(inp[:, 0])
    for t in range(T):
        h = torch.addcmul(inp[:, t], decay[:, t], h)
    chunk_decay = decay.prod(dim=1)

    # Pass 2: the state entering each chunk (h_{-1} for the first one).
    carry = torch.zeros_like(h[0]) if initial_state is None else initial_state.to(h.dtype)
    carries = []
    for c in range(nc):
        carries.append(carry)
        carry = torch.addcmul(h[c], chunk_decay[c], carry)

    # Pass 3: rerun every chunk from its true entering state, keeping all states.
    h = torch.stack(carries, 0)
    states = []
    for t in range(T):
        h = torch.addcmul(inp[:, t], decay[:, t], h)
        states.append(h)
    states = torch.stack(states, 1)                                        # (nc, T, ...)
    states = states.reshape((nc * T,) + states.shape[2:])[:length]
    return states.movedim(0, dim)


def _time_major_bc(x: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C as a tensor broadcastable against the time-major (L, batch, dim, N) state."""
    x = x.to(dtype)
    if x.dim() == 2:                                  # (dim, N): fixed over time and batch
        return x
    if x.dim() == 3:                                  # (batch, N, L): shared by all channels
        return x.permute(2, 0, 1).unsqueeze(2)        # (L, batch, 1, N)
    groups = x.shape[1]                               # (batch, G, N, L): group g serves dim // G channels
    x = x.permute(3, 0, 1, 2).unsqueeze(3)            # (L, batch, G, 1, N)
    x = x.expand(-1, -1, -1, dim // groups, -1)
    return x.reshape(x.shape[0], x.shape[1], dim, x.shape[-1])


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
    dim = u.shape[1]
    A = A.to(ct)
    # Time-major (L, batch, dim, N) so each vectorised step of the scan reads contiguous rows.
    delta_t = delta.permute(2, 0, 1).unsqueeze(-1)                       # (L, batch, dim, 1)
    decay = torch.exp(delta_t * A)                                       # (L, batch, dim, N)
    drive = (delta_t * u.permute(2, 0, 1).unsqueeze(-1)) * _time_major_bc(B, dim, ct)
    h0 = None if initial_state is None else initial_state.to(ct)
    states = linear_scan_ref(decay, drive, h0, dim=0)                    # (L, batch, dim, N)
    y = (states * _time_major_bc(C, dim, ct)).sum(-1).permute(1, 2, 0)   # (batch, dim, L)
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    if return_last_state:
        return y, states[-1]
    return y
