"""Pure-PyTorch selective scan: the oracle every kernel is tested against, and the CPU path.

The recurrence, per channel d and state n::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,      y_t = sum_n C_t * h_t  (+ D * u_t)

is evaluated by a two-level scan instead of a Python loop over all L steps: the sequence is cut into
``nc`` chunks of ``T ~ sqrt(L)`` steps; one loop over the T positions runs every chunk at once from a zero
state (also accumulating each chunk's total decay), and a second loop over the ``nc`` chunks carries the
state across chunk boundaries. That is ``T + nc ~ 2 sqrt(L)`` vectorised steps, each a plain
multiply-add, so it is as stable as the step loop (no exp of a positive number, no division) and
differentiable by autograd. The state is kept in fp32 for fp16/bf16/fp32 inputs and in fp64 for fp64 inputs.
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
                    dim: int = -2) -> torch.Tensor:
    """All states of ``h_t = decay_t * h_{t-1} + inp_t`` along axis ``dim`` (h_{-1} = initial_state or 0).

    ``decay`` and ``inp`` broadcast to one shape; ``initial_state`` has that shape without ``dim``. Works
    for real and complex tensors. Returns a tensor of the broadcast shape.
    """
    decay, inp = torch.broadcast_tensors(decay, inp)
    dim = dim % decay.dim()
    decay = decay.movedim(dim, -1)
    inp = inp.movedim(dim, -1)
    length = decay.shape[-1]
    T = _chunk_size(length)
    nc = -(-length // T)
    pad = nc * T - length
    if pad:
        decay = F.pad(decay, (0, pad), value=1.0) if not decay.is_complex() else torch.cat(
            [decay, decay.new_ones(decay.shape[:-1] + (pad,))], -1)
        inp = torch.cat([inp, inp.new_zeros(inp.shape[:-1] + (pad,))], -1)
    decay = decay.reshape(decay.shape[:-1] + (nc, T))
    inp = inp.reshape(inp.shape[:-1] + (nc, T))

    # Level 1: every chunk from a zero state, and the running product of decays inside each chunk.
    local, cum_decay = [], []
    h = torch.zeros_like(inp[..., 0])
    p = torch.ones_like(decay[..., 0])
    for t in range(T):
        h = decay[..., t] * h + inp[..., t]
        p = p * decay[..., t]
        local.append(h)
        cum_decay.append(p)
    local = torch.stack(local, -1)          # (..., nc, T)
    cum_decay = torch.stack(cum_decay, -1)  # (..., nc, T)

    # Level 2: the state entering each chunk.
    carry = torch.zeros_like(local[..., 0, 0]) if initial_state is None else initial_state.to(local.dtype)
    carries = []
    for c in range(nc):
        carries.append(carry)
        carry = local[..., c, T - 1] + cum_decay[..., c, T - 1] * carry
    carries = torch.stack(carries, -1)      # (..., nc)

    states = local + cum_decay * carries.unsqueeze(-1)
    states = states.reshape(states.shape[:-2] + (nc * T,))[..., :length]
    return states.movedim(-1, dim)


def _expand_bc(x: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C as a tensor broadcastable against (batch, dim, L, N)."""
    x = x.to(dtype)
    if x.dim() == 2:                       # (dim, N): fixed over time and batch
        return x.unsqueeze(1)              # (dim, 1, N)
    if x.dim() == 3:                       # (batch, N, L): shared by all channels
        return x.transpose(1, 2).unsqueeze(1)  # (batch, 1, L, N)
    groups = x.shape[1]                    # (batch, G, N, L): group g serves dim // G channels
    x = x.repeat_interleave(dim // groups, dim=1)  # (batch, dim, N, L)
    return x.transpose(2, 3)               # (batch, dim, L, N)


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
    Bx = _expand_bc(B, dim, ct)
    Cx = _expand_bc(C, dim, ct)
    delta_t = delta.unsqueeze(-1)                       # (batch, dim, L, 1)
    decay = torch.exp(delta_t * A[:, None, :])           # (batch, dim, L, N)
    drive = delta_t * u.unsqueeze(-1) * Bx               # (batch, dim, L, N)
    h0 = None if initial_state is None else initial_state.to(ct)
    states = linear_scan_ref(decay, drive, h0, dim=2)    # (batch, dim, L, N)
    y = (states * Cx).sum(-1)
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    y = y.to(dtype_in)
    if return_last_state:
        return y, states[:, :, -1]
    return y
