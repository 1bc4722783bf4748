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
    all states, or ``sum(states * readout, -1)`` when ``readout`` is given (then the states are never stored
    whole, which keeps the working set small for large N)."""
    length = decay.shape[0]
    T = _chunk_size(length)
    nc = -(-length // T)
    pad = nc * T - length

    def chunked(x, fill):
        if x is None:
            return None
        if pad:
            x = torch.cat([x, x.new_full((pad,) + x.shape[1:], fill)], 0)
        return x.reshape((nc, T) + x.shape[1:])

    decay, inp, readout = chunked(decay, 1.0), chunked(inp, 0.0), chunked(readout, 0.0)

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

    # Pass 3: rerun every chunk from its true entering state. Padded steps keep the state unchanged.
    h = torch.stack(carries, 0)
    outputs = []
    for t in range(T):
        h = torch.addcmul(inp[:, t], decay[:, t], h)
        outputs.append(h if readout is None else (h * readout[:, t]).sum(-1))
    outputs = torch.stack(outputs, 1)                                       # (nc, T, ...)
    outputs = outputs.reshape((nc * T,) + outputs.shape[2:])[:length]
    return outputs, h[-1]


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


def _expand_bc(x: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C as a tensor broadcastable against (batch, dim, L, N)."""
    x = x.to(dtype)
    if x.dim() == 2:                                  # (dim, N): fixed over time and batch
        return x[None, :, None, :]                    # (1, dim, 1, N)
    if x.dim() == 3:                                  # (batch, N, L): shared by all channels
        return x.transpose(1, 2).unsqueeze(1)         # (batch, 1, L, N)
    groups = x.shape[1]                               # (batch, G, N, L): group g serves dim // G channels
    x = x.transpose(2, 3).unsqueeze(2)                # (batch, G, 1, L, N)
    x = x.expand(-1, -1, dim // groups, -1, -1)
    return x.reshape(x.shape[0], dim, x.shape[3], x.shape[4])


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
    # Elementwise work in the inputs' own (batch, dim, L, N) layout, then one copy to time-major
    # (L, batch, dim, N) so every vectorised step of the scan reads contiguous rows.
    delta_n = delta.unsqueeze(-1)                                            # (batch, dim, L, 1)
    decay = torch.exp(delta_n * A[:, None, :])                               # (batch, dim, L, N)
    drive = (delta_n * u.unsqueeze(-1)) * _expand_bc(B, dim, ct)
    decay = decay.permute(2, 0, 1, 3).contiguous()
    drive = drive.permute(2, 0, 1, 3).contiguous()
    readout = _expand_bc(C, dim, ct).permute(2, 0, 1, 3)                       # (L or 1, batch|1, dim|1, N)
    readout = readout.expand(decay.shape[0], *readout.shape[1:])
    h0 = None if initial_state is None else initial_state.to(ct)
    y, last_state = _chunked_scan(decay, drive, h0, readout)                   # (L, batch, dim), (batch, dim, N)
    y = y.permute(1, 2, 0)
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    if return_last_state:
        return y, last_state
    return y
