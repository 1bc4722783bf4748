"""The ConvLSTM baseline cell, with the same interface as :class:`~vssm.video.convs5.ConvS5SSM`.

One k x k convolution without bias maps [u_t; h_{t-1}] to the four gates (input, forget, output, cell,
in that order); c_t = f c_{t-1} + i g, h_t = o tanh(c_t); the output is h_t. The weight ``A`` is stored as
a PyTorch conv weight (4P, U+P, k, k). A ConvLSTM has no parallel form: ``forward`` runs its frames one
after another, after computing the input half of the convolution for all frames at once. The state is the
pair (c, h) stacked as (batch, 2, P, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hippo import he_normal_

__all__ = ["ConvLSTMCell"]


class ConvLSTMCell(nn.Module):
    def __init__(self, dim: int, hidden: int | None = None, kernel_size: int = 3):
        super().__init__()
        hidden = dim if hidden is None else hidden
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.dim, self.state_dim, self.kernel_size = dim, hidden, kernel_size
        fan_in = (dim + hidden) * kernel_size ** 2
        weight = he_normal_((fan_in, 4 * hidden)).reshape(kernel_size, kernel_size, dim + hidden, 4 * hidden)
        self.A = nn.Parameter(weight.permute(3, 2, 0, 1).float().contiguous())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.state_dim}, kernel_size={self.kernel_size}"

    def _gates(self, x_part: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        gates = x_part + F.conv2d(h, self.A[:, self.dim:], padding=self.kernel_size // 2)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return c, torch.sigmoid(o) * torch.tanh(c)

    def _check(self, u: torch.Tensor, state, frames: bool) -> None:
        rank = 5 if frames else 4
        if u.dim() != rank or u.shape[-3] != self.dim:
            layout = "(batch, T, U, H, W)" if frames else "(batch, U, H, W)"
            raise ValueError(f"ConvLSTMCell input must be {layout} with U={self.dim}, got {tuple(u.shape)}")
        if state is not None:
            want = (u.shape[0], 2, self.state_dim) + tuple(u.shape[-2:])
            if tuple(state.shape) != want:
                raise ValueError(f"state must be (batch, 2, P, H, W) = {want}, got {tuple(state.shape)}")

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        """u: (batch, T, U, H, W). Returns (h for every frame (batch, T, P, H, W), the last (c, h) state)."""
        self._check(u, state, frames=True)
        batch, length, _, height, width = u.shape
        x_parts = F.conv2d(u.reshape(batch * length, self.dim, height, width), self.A[:, :self.dim],
                           padding=self.kernel_size // 2).reshape(batch, length, 4 * self.state_dim, height, width)
        if state is None:
            state = u.new_zeros(batch, 2, self.state_dim, height, width)
        c, h = state[:, 0], state[:, 1]
        outs = []
        for t in range(length):
            c, h = self._gates(x_parts[:, t], h, c)
            outs.append(h)
        return torch.stack(outs, 1), torch.stack([c, h], 1)

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None):
        self._check(u_t, state, frames=False)
        y, state = self.forward(u_t.unsqueeze(1), state)
        return y.squeeze(1), state

    def initial_state(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, 2, self.state_dim, height, width, device=device)
