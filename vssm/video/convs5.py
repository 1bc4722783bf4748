"""One ConvS5 layer: a diagonal complex SSM per pixel, with convolutions as its B and C.

For an input clip u (batch, T, U, H, W) the layer keeps a state x of P = ssm_size/2 complex channels per
pixel and computes, with Lambda_bar and B_bar the zero-order-hold discretisation of (Lambda, B)::

    x_t = Lambda_bar * x_{t-1} + B_bar (conv) u_t         y_t = 2 Re(C (conv) x_t)

then the output block (``c_d_block``) on (y, u). Lambda_bar is diagonal, so the recurrence over time is the
shared :func:`vssm.kernels.complex_scan` along the time route, with the scanned channels (P, H, W); the
convolutions run on all frames at once. ``forward`` is the parallel (training) mode over a whole clip,
``step`` the recurrent (generation) mode over one frame; both take and return the state as real/imaginary
pairs (batch, 2, P, H, W).

Parameters are stored in the reference's layout: ``B`` (P, U*k_B*k_B, 2), ``C`` (k_C, k_C, P, U, 2),
``Lambda_re``/``Lambda_im`` (P,), ``log_step`` (P, 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vssm.kernels import complex_scan

from .blocks import activation_fn, init_like_flax_, make_output_block
from .hippo import discretize_zoh, hippo_init, init_b_kernel, init_c_kernel, init_log_step

__all__ = ["ConvS5SSM"]

MAX_RE_LAMBDA = -1e-4   # clip_eigs keeps every mode strictly decaying


class ConvS5SSM(nn.Module):
    """A ConvS5 SSM (see the module docstring).

    Args:
        dim: U, the channels of the input and the output.
        ssm_size: 2P, the size of the HiPPO state before conjugate symmetry halves it.
        blocks: independent HiPPO blocks the state is initialised as.
        kernel_b, kernel_c, kernel_d: odd kernel sizes of B, C and the output block's convolutions.
        c_d_block: "resnet", "standard", "half_glu" or "diag_resnet" (no block; see ``blocks.py``).
        activation: "gelu" (tanh approximation), "relu", "swish" or "elu".
        num_groups: GroupNorm groups of the output block.
        clip_eigs: clamp Re(Lambda) to at most -1e-4. Without it a mode with Re(Lambda) > 0 is an error.
        dt_min, dt_max: range of the initial step sizes (log-uniform).
        scan_backend: backend of the time scan ("auto", "reference", "triton").
    """

    def __init__(self, dim: int, ssm_size: int, blocks: int = 1, kernel_b: int = 3, kernel_c: int = 3,
                 kernel_d: int = 3, c_d_block: str = "resnet", activation: str = "gelu", num_groups: int = 32,
                 clip_eigs: bool = True, dt_min: float = 0.001, dt_max: float = 0.1, scan_backend: str = "auto"):
        super().__init__()
        for name, k in (("kernel_b", kernel_b), ("kernel_c", kernel_c), ("kernel_d", kernel_d)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be a positive odd kernel size, got {k}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        lam, v, vinv = hippo_init(ssm_size, blocks)
        self.dim, self.state_dim = dim, ssm_size // 2
        self.kernel_b, self.kernel_c = kernel_b, kernel_c
        self.clip_eigs = clip_eigs
        self.scan_backend = scan_backend
        p = self.state_dim
        self.Lambda_re = nn.Parameter(lam.real.float())
        self.Lambda_im = nn.Parameter(lam.imag.float())
        self.B = nn.Parameter(init_b_kernel(p, dim, kernel_b, vinv))
        self.C = nn.Parameter(init_c_kernel(p, dim, kernel_c, v))
        self.log_step = nn.Parameter(init_log_step(p, dt_min, dt_max))
        self.c_d = init_like_flax_(make_output_block(c_d_block, dim, kernel_d, num_groups, activation_fn(activation)))
        self.c_d_block = c_d_block

    def extra_repr(self) -> str:
        return f"dim={self.dim}, state_dim={self.state_dim} (complex), clip_eigs={self.clip_eigs}"

    def continuous_lambda(self) -> torch.Tensor:
        lam_re = self.Lambda_re
        if self.clip_eigs:
            lam_re = lam_re.clamp(max=MAX_RE_LAMBDA)
        elif not torch.compiler.is_compiling() and bool((lam_re.detach() > 0).any()):
            bad = int((lam_re.detach() > 0).sum())
            raise ValueError(f"unstable ConvS5 layer: {bad} of {lam_re.numel()} modes have Re(Lambda) > 0 and "
                             f"clip_eigs is off; the state would grow without bound (turn clip_eigs on)")
        return torch.complex(lam_re.float(), self.Lambda_im.float())

    def discretize(self):
        """Lambda_bar (P,) complex and the weights of the two real convolutions.

        Returns (decay (2, P), b_weight (2P, U, k_B, k_B), c_weight (U, 2P, k_C, k_C)): B_bar as one conv
        with its real parts in the first P output channels and imaginary parts in the last P, and C folded
        into one real conv over [Re x; Im x] so that it gives 2 Re(C x) directly.
        """
        p, k = self.state_dim, self.kernel_b
        lam = self.continuous_lambda()
        b_tilde = torch.complex(self.B[..., 0].float(), self.B[..., 1].float())
        lam_bar, b_bar = discretize_zoh(lam, b_tilde, torch.exp(self.log_step[:, 0].float()))
        decay = torch.stack([lam_bar.real, lam_bar.imag], 0)
        b_weight = torch.cat([b_bar.real, b_bar.imag], 0).reshape(2 * p, self.dim, k, k)
        c = self.C.permute(3, 2, 0, 1, 4)                                  # (U, P, k, k, 2)
        c_weight = 2 * torch.cat([c[..., 0], -c[..., 1]], 1)
        return decay, b_weight, c_weight

    def _check(self, u: torch.Tensor, state: torch.Tensor | None, frames: bool) -> None:
        rank = 5 if frames else 4
        layout = "(batch, T, U, H, W)" if frames else "(batch, U, H, W)"
        if u.dim() != rank or u.shape[-3] != self.dim:
            raise ValueError(f"ConvS5SSM input must be {layout} with U={self.dim}, got {tuple(u.shape)}")
        if state is not None:
            want = (u.shape[0], 2, self.state_dim) + tuple(u.shape[-2:])
            if tuple(state.shape) != want:
                raise ValueError(f"state must be (batch, 2, P, H, W) = {want}, got {tuple(state.shape)}")

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        """Parallel mode. u: (batch, T, U, H, W); state: (batch, 2, P, H, W) before the first frame, or None.

        Returns (y (batch, T, U, H, W), the last state (batch, 2, P, H, W) in fp32).
        """
        self._check(u, state, frames=True)
        batch, length, _, height, width = u.shape
        decay, b_weight, c_weight = self.discretize()
        frames = u.reshape(batch * length, self.dim, height, width)
        drive = F.conv2d(frames, b_weight.to(u.dtype), padding=self.kernel_b // 2)
        drive = drive.reshape(batch, length, 2, self.state_dim, height, width)
        states = complex_scan(decay, drive, state, backend=self.scan_backend)
        y = F.conv2d(states.reshape(batch * length, 2 * self.state_dim, height, width).to(u.dtype),
                     c_weight.to(u.dtype), padding=self.kernel_c // 2)
        y = self.c_d(y, frames)
        return y.reshape(u.shape), states[:, -1]

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None):
        """Recurrent mode, one frame. u_t: (batch, U, H, W). Returns (y_t (batch, U, H, W), the new state)."""
        self._check(u_t, state, frames=False)
        y, state = self.forward(u_t.unsqueeze(1), state)
        return y.squeeze(1), state

    def initial_state(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, 2, self.state_dim, height, width, device=device)
