"""Config preparation shared by tools/train.py and tools/test.py (no toolkit logic of their own).

Handles what MMEngine does not do on a CPU-only machine: its ``pytorch`` launcher calls
``torch.cuda.set_device`` and its default DDP wrapper passes ``device_ids``; SyncBN cannot run on CPU.
"""

from __future__ import annotations

import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the tools)
from mmengine.logging import print_log

from .checkpoint import allow_mmengine_checkpoints


def load_config(path: str, cfg_options: dict | None, work_dir: str | None, launcher: str) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f"config not found: {path}")
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(path))[0])
    allow_mmengine_checkpoints()  # resume / load_from / test read MMEngine checkpoints with weights_only=True
    if launcher != "none" and not torch.cuda.is_available():
        _prepare_cpu_distributed(cfg)
    return cfg


def replace_sync_bn(node) -> int:
    """Turn every ``type='SyncBN'`` in a config tree into plain BN; returns how many were changed."""
    n = 0
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
            n += 1
        for v in node.values():
            n += replace_sync_bn(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += replace_sync_bn(v)
    return n


def _prepare_cpu_distributed(cfg: Config) -> None:
    """Create the gloo group ourselves (Runner then skips its CUDA-only init) and wrap DDP without devices."""
    if not dist.is_initialized():
        for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"--launcher pytorch needs {var} in the environment: start with torchrun")
        dist.init_process_group(backend="gloo")
    cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    wrapper = cfg.get("model_wrapper_cfg") or dict(type="MMDistributedDataParallel")
    wrapper.update(device_ids=None, broadcast_buffers=False)
    cfg.model_wrapper_cfg = wrapper
    n = replace_sync_bn(cfg.model)
    if n:
        print_log(f"CPU distributed run: {n} SyncBN layers replaced by BN (SyncBN needs CUDA)", logger="current")


def enable_amp(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper
    if wrapper.get("type", "OptimWrapper") == "AmpOptimWrapper":
        return
    wrapper.type = "AmpOptimWrapper"
    if torch.cuda.is_available():
        wrapper.setdefault("loss_scale", "dynamic")
    else:
        wrapper.setdefault("dtype", "bfloat16")  # CPU autocast supports bf16 only
