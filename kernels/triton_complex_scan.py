"""Triton kernel for :func:`~vssm.kernels.complex_scan.complex_scan`, with its autograd function.

Layout: b is (batch, L, 2, C, R) contiguous (R = the product of the trailing axes), so one channel's real
and imaginary planes of one step are each a contiguous row of C*R numbers. A program owns a tile of
BLOCK channels of one batch element and walks the L steps in order, keeping the state in registers: every
input is read once and every state written once, which is all a memory-bound recurrence can ask for. The
convolutional SSM this serves has C*R = (state channels x pixels) in the tens of thousands per batch
element, so tiles over channels alone fill the GPU; no chunked scan over time is needed.

The backward pass is the same kernel run the other way: with g the gradient on the states,
``gb_t = g_t + conj(a_{t+1}) * gb_{t+1}`` is a scan in the opposite direction with the conjugate decay
(shifted by one step for per-step decays); then ``grad b = gb``, ``grad a_t = gb_t * conj(x_{t-1})`` and
``grad x_{-1} = conj(a_0) * gb_0``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["complex_scan_triton"]

BLOCK = 256


@triton.jit
def _complex_scan_kernel(a_ptr, b_ptr, x0_ptr, out_ptr, L, C, R, plane,
                         PER_STEP_DECAY: tl.constexpr, HAS_INIT: tl.constexpr, REVERSE: tl.constexpr,
                         BLOCK_SIZE: tl.constexpr):
    # plane = C * R, the length of one real or imaginary row; offsets are int64 through n
    n = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < plane
    chan = offs // R                                   # the state channel of each lane
    if HAS_INIT:
        base0 = x0_ptr + n * 2 * plane
        x_re = tl.load(base0 + offs, mask=mask, other=0.0).to(tl.float32)
        x_im = tl.load(base0 + plane + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        x_re = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
        x_im = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    if not PER_STEP_DECAY:
        a_re = tl.load(a_ptr + chan, mask=mask, other=0.0).to(tl.float32)
        a_im = tl.load(a_ptr + C + chan, mask=mask, other=0.0).to(tl.float32)
    for i in range(L):
        if REVERSE:
            t = L - 1 - i
        else:
            t = i
        step = (n * L + t) * 2 * plane
        if PER_STEP_DECAY:
            a_base = a_ptr + (n * L + t) * 2 * C
            a_re = tl.load(a_base + chan, mask=mask, other=0.0).to(tl.float32)
            a_im = tl.load(a_base + C + chan, mask=mask, other=0.0).to(tl.float32)
        b_re = tl.load(b_ptr + step + offs, mask=mask, other=0.0).to(tl.float32)
        b_im = tl.load(b_ptr + step + plane + offs, mask=mask, other=0.0).to(tl.float32)
        new_re = a_re * x_re - a_im * x_im + b_re
        x_im = a_re * x_im + a_im * x_re + b_im
        x_re = new_re
        tl.store(out_ptr + step + offs, x_re, mask=mask)
        tl.store(out_ptr + step + plane + offs, x_im, mask=mask)


def _launch(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    """States of the recurrence for contiguous (batch, L, 2, C, R) b; fp32 output."""
    batch, length, _, channels, rest = b.shape
    out = torch.empty(b.shape, device=b.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    grid = (batch, triton.cdiv(channels * rest, BLOCK))
    _complex_scan_kernel[grid](a, b, x0 if x0 is not None else b, out, length, channels, rest,
                               channels * rest, PER_STEP_DECAY=a.dim() == 4, HAS_INIT=x0 is not None, REVERSE=reverse,
                               BLOCK_SIZE=BLOCK)
    return out


def _conj(a: torch.Tensor) -> torch.Tensor:
    return torch.stack([a.select(-2, 0), -a.select(-2, 1)], dim=-2)


def _shift_decay_for_backward(a: torch.Tensor, reverse: bool) -> torch.Tensor:
    """conj(a) one step later (earlier for a reversed scan), the decay of the adjoint recurrence."""
    a = _conj(a)
    if a.dim() == 2:
        return a.contiguous()
    pad = torch.zeros_like(a[:, :1])
    if reverse:
        return torch.cat([pad, a[:, :-1]], dim=1).contiguous()
    return torch.cat([a[:, 1:], pad], dim=1).contiguous()


def _times_conj(g: torch.Tensor, x: torch.Tensor, axis: int):
    """g * conj(x) for pairs on ``axis``: returns the real and the imaginary part."""
    g_re, g_im = g.select(axis, 0), g.select(axis, 1)
    x_re, x_im = x.select(axis, 0), x.select(axis, 1)
    return g_re * x_re + g_im * x_im, g_im * x_re - g_re * x_im


class _ComplexScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, x0, reverse):
        states = _launch(a, b, x0, reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(a, states, x0)
        ctx.dtypes = (a.dtype, b.dtype, None if x0 is None else x0.dtype)
        return states

    @staticmethod
    def backward(ctx, grad):
        a, states, x0 = ctx.saved_tensors
        reverse = ctx.reverse
        grad = grad.contiguous().float()
        gb = _launch(_shift_decay_for_backward(a.float(), reverse), grad, None, not reverse)
        first = -1 if reverse else 0                       # the step that reads x_{-1}
        grad_a = grad_x0 = None
        if ctx.needs_input_grad[0]:
            before = torch.zeros_like(states[:, :1]) if x0 is None else x0.float().unsqueeze(1)
            if reverse:
                prev = torch.cat([states[:, 1:], before], dim=1)
            else:
                prev = torch.cat([before, states[:, :-1]], dim=1)
            re, im = _times_conj(gb, prev, 2)              # (batch, L, C, R) each
            if a.dim() == 2:
                grad_a = torch.stack([re.sum((0, 1, 3)), im.sum((0, 1, 3))], 0)
            else:
                grad_a = torch.stack([re.sum(3), im.sum(3)], 2)
            grad_a = grad_a.to(ctx.dtypes[0])
        if x0 is not None and ctx.needs_input_grad[2]:
            a_first = a.float() if a.dim() == 2 else a[:, first].float()      # (2, C) or (batch, 2, C)
            a_re, a_im = a_first.select(-2, 0).unsqueeze(-1), a_first.select(-2, 1).unsqueeze(-1)
            g_re, g_im = gb[:, first, 0], gb[:, first, 1]                     # (batch, C, R)
            grad_x0 = torch.stack([a_re * g_re + a_im * g_im, a_re * g_im - a_im * g_re], 1)
            grad_x0 = grad_x0.to(ctx.dtypes[2])
        grad_b = gb.to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, grad_x0, None


def complex_scan_triton(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None,
                        reverse: bool) -> torch.Tensor:
    """``complex_scan`` on the Triton kernel; arguments as documented there (already checked)."""
    shape = b.shape
    b5 = b.reshape(shape[:4] + (-1,)).contiguous()
    x0 = None if initial_state is None else initial_state.reshape(shape[:1] + (2, shape[3], -1)).contiguous()
    states = _ComplexScan.apply(a.contiguous(), b5, x0, bool(reverse))
    return states.reshape(shape)
