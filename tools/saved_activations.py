"""What one training forward keeps for the backward pass: the bytes of every tensor saved for backward,
grouped by shape and dtype (distinct storages counted once). Analysis aid for training memory.

    python tools/saved_activations.py vim_tiny_patch16_224 [--depth 1] [--batch 1] [--img 224] [--dtype bf16]

The scan runs on the backend the environment selects: on CPU the PyTorch reference by default, whose saved
tensors differ from the Triton kernels'; for the GPU path's, run the Triton kernels in the interpreter
(``VSSM_SCAN_BACKEND=triton TRITON_INTERPRET=1``, slow: keep ``--depth`` small).
"""

from __future__ import annotations

import argparse
import collections

import timm
import torch

import vssm  # noqa: F401


def saved_tensor_bytes(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> collections.Counter:
    """{(shape, dtype): bytes} of the storages saved for backward by one forward of ``model`` on ``x``."""
    seen, groups = set(), collections.Counter()

    def pack(t):
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen and storage.nbytes() > 0:
            seen.add(key)
            groups[(tuple(t.shape), str(t.dtype).removeprefix("torch."))] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            model(x)
    return groups


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--depth", type=int, default=None, help="override the model's depth (blocks), e.g. 1")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16", help="autocast dtype (fp32: none)")
    p.add_argument("--scale-batch", type=int, default=128, help="also print the total at this batch")
    p.add_argument("--rows", type=int, default=25)
    a = p.parse_args()
    torch.manual_seed(0)
    kwargs = {} if a.depth is None else {"depth": a.depth}
    model = timm.create_model(a.model, **kwargs).train()
    x = torch.randn(a.batch, 3, a.img, a.img)
    groups = saved_tensor_bytes(model, x, torch.bfloat16 if a.dtype == "bf16" else None)
    total = sum(groups.values())
    print(f"{a.model} (depth {a.depth or 'default'}, batch {a.batch}, {a.dtype}): {total / 2**20:.2f} MiB saved "
          f"for backward; x{a.scale_batch // a.batch} = {total * a.scale_batch / a.batch / 2**30:.2f} GiB at batch "
          f"{a.scale_batch}")
    for (shape, dtype), nbytes in groups.most_common(a.rows):
        print(f"{nbytes / 2**20:9.3f} MiB  {dtype:9s} {shape}")


if __name__ == "__main__":
    main()
