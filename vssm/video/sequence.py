"""The sequence layer around a recurrent cell, and the stack of such layers.

A layer is: skip = u; optional pre-LayerNorm; the cell (ConvS5 or ConvLSTM); dropout with one mask for all
frames; + skip; optional post-LayerNorm. The norms act on the channels of each pixel (eps 1e-6). The stack
runs the layers in order and returns the output clip and every layer's last state, which is what
generation carries from frame to frame.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import ChannelLayerNorm
from .convlstm import ConvLSTMCell
from .convs5 import ConvS5SSM

__all__ = ["SequenceLayer", "SequenceStack", "make_cell"]


def make_cell(cell: str, dim: int, **cell_kwargs) -> nn.Module:
    if cell == "convs5":
        return ConvS5SSM(dim, **cell_kwargs)
    if cell == "convlstm":
        hidden = cell_kwargs.get("hidden")
        if hidden is not None and hidden != dim:   # its output h_t is added to the layer input
            raise ValueError(f"a ConvLSTM layer's hidden size must equal its input width {dim}, got {hidden}")
        return ConvLSTMCell(dim, **cell_kwargs)
    raise ValueError(f"cell must be 'convs5' or 'convlstm', got {cell!r}")


class SequenceLayer(nn.Module):
    def __init__(self, cell: nn.Module, dropout: float = 0.0, use_norm: bool = True, prenorm: bool = False,
                 per_layer_skip: bool = True):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.norm = ChannelLayerNorm(cell.dim) if use_norm else None
        self.prenorm, self.per_layer_skip, self.dropout = prenorm, per_layer_skip, dropout

    def _drop(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropout == 0.0:
            return y
        keep = 1.0 - self.dropout     # one mask per clip, shared by its frames
        mask = torch.bernoulli(y.new_full((y.shape[0], 1) + tuple(y.shape[2:]), keep)) / keep
        return y * mask

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(0, 1)).reshape(x.shape)

    def _run(self, u: torch.Tensor, state, step: bool):
        skip = u if self.per_layer_skip else 0
        if self.norm is not None and self.prenorm:
            u = self._norm(u)
        y, state = (self.cell.step if step else self.cell)(u, state)
        if step:   # one frame: give it a time axis of 1 for the shared code below
            y, skip = y.unsqueeze(1), skip.unsqueeze(1) if torch.is_tensor(skip) else skip
        y = skip + self._drop(y)
        if self.norm is not None and not self.prenorm:
            y = self._norm(y)
        return (y.squeeze(1) if step else y), state

    def forward(self, u: torch.Tensor, state=None):
        """Parallel mode: u (batch, T, U, H, W). Returns (y like u, last state)."""
        return self._run(u, state, step=False)

    def step(self, u_t: torch.Tensor, state=None):
        """Recurrent mode: u_t (batch, U, H, W). Returns (y_t like u_t, new state)."""
        return self._run(u_t, state, step=True)


class SequenceStack(nn.Module):
    """``n_layers`` sequence layers. With ``skip_connections`` (the reference's option for deep stacks) the
    inputs of layers 3 and 6 are added to the inputs of layers 8 and 11."""

    def __init__(self, dim: int, n_layers: int, cell: str = "convs5", dropout: float = 0.0, use_norm: bool = True,
                 prenorm: bool = False, per_layer_skip: bool = True, skip_connections: bool = False, **cell_kwargs):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.dim = dim
        self.skip_connections = skip_connections
        self.layers = nn.ModuleList(
            SequenceLayer(make_cell(cell, dim, **cell_kwargs), dropout, use_norm, prenorm, per_layer_skip)
            for _ in range(n_layers))

    def _states(self, states, n):
        if states is None:
            return [None] * n
        if len(states) != n:
            raise ValueError(f"expected one state per layer ({n}), got {len(states)}")
        return list(states)

    def _run(self, u, states, step: bool):
        states = self._states(states, len(self.layers))
        saved, last = {}, []
        for i, layer in enumerate(self.layers):
            if self.skip_connections:
                if i in (3, 6):
                    saved[i] = u
                elif i == 8:
                    u = u + saved[3]
                elif i == 11:
                    u = u + saved[6]
            u, state = (layer.step if step else layer)(u, states[i])
            last.append(state)
        return u, last

    def forward(self, u: torch.Tensor, states=None):
        """Parallel mode over a clip (batch, T, dim, H, W); ``states`` one per layer or None (zeros).

        Returns (output clip, list of every layer's last state)."""
        return self._run(u, states, step=False)

    def step(self, u_t: torch.Tensor, states=None):
        """Recurrent mode over one frame (batch, dim, H, W). Returns (output frame, new states)."""
        return self._run(u_t, states, step=True)
