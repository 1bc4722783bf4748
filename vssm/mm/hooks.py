"""Hooks for checking distributed runs."""

from __future__ import annotations

import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpReplicaWeightsHook(Hook):
    """After training, every rank writes its own copy of the weights to ``work_dir/replica_rank{r}.pth``.

    Data-parallel replicas must end identical; comparing these files checks it (tests do).
    """

    priority = "LOWEST"

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # parameters must match; buffers (BN running statistics) are per rank by design (broadcast_buffers=False)
        state = dict(params={k: v.detach().cpu().clone() for k, v in model.named_parameters()},
                     buffers={k: v.detach().cpu().clone() for k, v in model.named_buffers()})
        torch.save(state, osp.join(runner.work_dir, f"replica_rank{get_rank()}.pth"))
