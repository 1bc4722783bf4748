"""Initialisation and discretisation of ConvS5's diagonal state matrix.

Lambda comes from the normal part of the HiPPO-LegS matrix (its DPLR form): the real parts are all the mean
of the diagonal (-1/2) and the imaginary parts its eigenvalues. Only half of each conjugate pair is kept
(the layer outputs 2 Re(...)), and the eigenvectors V are folded into the B and C kernels at
initialisation, so the layer itself never multiplies by V. The initialisers draw the same distributions
as the JAX reference (He-normal, truncated at two standard deviations).
"""

from __future__ import annotations

import math

import torch

__all__ = ["dplr_hippo", "hippo_init", "discretize_zoh", "he_normal_", "init_b_kernel", "init_c_kernel",
           "init_log_step"]


def dplr_hippo(n: int):
    """Eigenvalues (complex128, ascending imaginary part) and eigenvectors of the normal HiPPO-LegS part."""
    p = torch.sqrt(1 + 2 * torch.arange(n, dtype=torch.float64))
    hippo = -(torch.tril(p[:, None] * p[None, :]) - torch.diag(torch.arange(n, dtype=torch.float64)))
    low_rank = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    normal = hippo + low_rank[:, None] * low_rank[None, :]
    lambda_re = torch.diagonal(normal).mean() * torch.ones(n, dtype=torch.float64)
    lambda_im, vectors = torch.linalg.eigh(normal.to(torch.complex128) * -1j)
    return torch.complex(lambda_re, lambda_im), vectors


def hippo_init(ssm_size: int, blocks: int = 1):
    """Lambda (P,) and the eigenvector maps V (ssm_size, P), V^-1 (P, ssm_size), P = ssm_size / 2.

    With ``blocks`` > 1 the state is split into that many independent HiPPO blocks (block-diagonal V).
    """
    if ssm_size % blocks or (ssm_size // blocks) % 2:
        raise ValueError(f"ssm_size ({ssm_size}) must split into {blocks} blocks of even size")
    block = ssm_size // blocks
    lam, vec = dplr_hippo(block)
    half = block // 2
    lam, vec = lam[:half], vec[:, :half]
    lam = lam.repeat(blocks)
    v = torch.block_diag(*([vec] * blocks))
    vinv = torch.block_diag(*([vec.conj().T] * blocks))
    return lam, v, vinv


def discretize_zoh(lam: torch.Tensor, b_tilde: torch.Tensor, step: torch.Tensor):
    """Zero-order hold: Lambda_bar = exp(Lambda step), B_bar = (Lambda_bar - 1) / Lambda * B (row-wise)."""
    lam_bar = torch.exp(lam * step)
    return lam_bar, ((lam_bar - 1) / lam)[:, None] * b_tilde


def he_normal_(shape, generator=None) -> torch.Tensor:
    """He-normal of a (fan_in, fan_out) matrix, truncated at +-2 sigma of the underlying normal."""
    std = math.sqrt(2.0 / shape[0]) / 0.87962566103423978   # the std of a unit normal truncated at +-2
    out = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.trunc_normal_(out, std=std, a=-2 * std, b=2 * std, generator=generator)
    return out


def init_b_kernel(p: int, dim: int, k: int, vinv: torch.Tensor, generator=None) -> torch.Tensor:
    """B as stored by the reference: V^-1 @ B0 with B0 (2P, dim*k*k) He-normal, as (P, dim*k*k, 2) pairs."""
    b0 = he_normal_((dim * k * k, 2 * p), generator).T.to(torch.complex128)
    vb = vinv @ b0
    return torch.stack([vb.real, vb.imag], -1).float()


def init_c_kernel(p: int, dim: int, k: int, v: torch.Tensor, generator=None) -> torch.Tensor:
    """C as stored by the reference: C0 @ V as a (k, k, P, dim, 2) kernel of pairs (HWIO, then re/im)."""
    c0 = he_normal_((2 * p * k * k, dim), generator)
    c0 = c0.reshape(dim, 2 * p, k, k).permute(0, 2, 3, 1).reshape(-1, 2 * p).to(torch.complex128)
    cv = (c0 @ v).reshape(dim, k, k, p).permute(1, 2, 3, 0)
    return torch.stack([cv.real, cv.imag], -1).float()


def init_log_step(p: int, dt_min: float, dt_max: float, generator=None) -> torch.Tensor:
    """log step per state channel, uniform in [log dt_min, log dt_max), shape (P, 1)."""
    u = torch.rand(p, 1, generator=generator)
    return u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
