"""Published figures of the official models, kept beside ours so every table can show both.

``params`` are counted from the official module trees at 1000 classes (our builds must equal them);
``gflops`` and ``top1`` (ImageNet-1k, 224 px, single crop) are the papers' / official READMEs' figures.
"""

from __future__ import annotations

OFFICIAL = {
    # VMamba (v2 models: official s1l8 / s2l15 configs; v0: the original "vanilla" VSSM)
    "vmamba_tiny": dict(params=30_249_064, gflops=4.9, top1=82.6, checkpoint="vssm1_tiny_0230s_ckpt_epoch_264.pth"),
    "vmamba_small": dict(params=50_147_752, gflops=8.7, top1=83.6, checkpoint="vssm_small_0229_ckpt_epoch_222.pth"),
    "vmamba_base": dict(params=88_557_800, gflops=15.4, top1=83.9, checkpoint="vssm_base_0229_ckpt_epoch_237.pth"),
    "vmamba_tiny_v0": dict(params=22_893_448),
    "vmamba_small_v0": dict(params=44_417_416),
    "vmamba_base_v0": dict(params=76_254_056),
    # Vision Mamba (Vim)
    "vim_tiny_patch16_224": dict(params=7_148_008, top1=76.1),
    "vim_tiny_patch16_stride8_224": dict(params=7_250_344),
    "vim_small_patch16_224": dict(params=25_796_584, top1=80.5),
    "vim_small_patch16_stride8_224": dict(params=26_001_256),
    "vim_base_patch16_224": dict(params=97_598_440, top1=81.9),
    # MSVMamba
    "msvmamba_nano": dict(params=6_864_136, gflops=0.9, top1=77.3),
    "msvmamba_micro": dict(params=11_879_272, gflops=1.5, top1=79.8),
    "msvmamba_tiny": dict(params=33_046_312, gflops=4.6, top1=82.8),
    # EfficientVMamba
    "efficient_vmamba_tiny": dict(params=6_493_660, gflops=0.8, top1=76.5),
    "efficient_vmamba_small": dict(params=11_273_688, gflops=1.3, top1=78.7),
    "efficient_vmamba_base": dict(params=33_717_136, gflops=4.0, top1=81.8),
}
