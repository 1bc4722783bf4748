"""A thin MMEngine backbone over a timm model: pyramid outputs, per-output norms, freezing, checkpoints.

The timm model (``self.body``) is the model; this class only selects outputs through timm's
``forward_intermediates``, adds the per-output LayerNorms the official detection backbones use
(``outnorm{i}``, so official detector checkpoints load), and wires MMEngine's options.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import timm
import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d
from timm.models import group_parameters
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoint import extract_state_dict, load_backbone_checkpoint, read_checkpoint


class TimmPyramidBackbone(BaseModule):
    """Base class: subclasses pick the timm model name and the checkpoint filter of their family.

    Args:
        model_name: timm model name.
        out_indices: which of the model's ``feature_info`` levels to return (a tuple of NCHW tensors).
        frozen_stages: -1 trains everything; 0 freezes the stem; k > 0 the stem and the first k stages.
        norm_eval: keep BatchNorm layers in eval mode while training.
        drop_path_rate: stochastic depth of the body (None: the timm variant's default).
        with_cp: activation checkpointing inside the body (timm's ``set_grad_checkpointing``).
        out_norm: add a LayerNorm over channels to each output (the official detection backbones do).
        pretrained: checkpoint path/URL (shorthand for ``init_cfg=dict(type='Pretrained', checkpoint=...)``).
        model_kwargs: extra keyword arguments for ``timm.create_model``.
    """

    checkpoint_filter: Optional[Callable] = None  # the family's timm checkpoint_filter_fn

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        drop_path_rate: Optional[float] = None,
        with_cp: bool = False,
        out_norm: bool = True,
        pretrained: Optional[str] = None,
        init_cfg: Optional[dict] = None,
        model_kwargs: Optional[dict] = None,
    ):
        if pretrained and init_cfg:
            raise ValueError("give either pretrained or init_cfg, not both")
        if pretrained:
            init_cfg = dict(type="Pretrained", checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.model_name = model_name
        self.arch_desc = model_name
        kwargs = dict(model_kwargs or {})
        if drop_path_rate is not None:  # None keeps the variant's own default
            kwargs["drop_path_rate"] = drop_path_rate
        self._create_kwargs = kwargs
        self.out_indices = tuple(int(i) for i in out_indices)
        self.body, levels = self._create_body(model_name, kwargs)
        classifier = (getattr(self.inner, "pretrained_cfg", None) or {}).get("classifier") or ()
        self.head_prefixes = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
        self.channels = [levels[i]["num_chs"] for i in self.out_indices]
        self.strides = [levels[i]["reduction"] for i in self.out_indices]
        if out_norm:
            for i, c in zip(self.out_indices, self.channels):
                self.add_module(f"outnorm{i}", LayerNorm2d(c))
        self.out_norm = out_norm
        self.norm_eval = norm_eval
        self.frozen_stages = frozen_stages
        if with_cp:
            self.inner.set_grad_checkpointing(True)
        self._freeze()

    # inner model: the timm classification model whose checkpoints load (the body itself here)
    inner_prefix = ""
    # body keys that classification checkpoints do not have (modules added for dense outputs)
    fresh_prefixes: tuple = ()

    @property
    def inner(self) -> torch.nn.Module:
        return self.body.get_submodule(self.inner_prefix.rstrip(".")) if self.inner_prefix else self.body

    def _create_body(self, model_name: str, kwargs: dict):
        """Build the timm model, keep only what the outputs need; returns (body, feature levels)."""
        body = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        levels = body.feature_info if isinstance(body.feature_info, list) else body.feature_info.info
        self._check_out_indices(self.out_indices, len(levels))
        # drop the head, the final norm and the stages after the last output
        body.prune_intermediate_layers(list(self.out_indices), prune_norm=True, prune_head=True)
        return body, levels

    def _forward_body(self, x: torch.Tensor) -> list:
        return self.body.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True)

    @staticmethod
    def _check_out_indices(out_indices, n_levels):
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i < 0 or i >= n_levels for i in out_indices):
            raise ValueError(f"out_indices {out_indices} out of range: this backbone has levels 0..{n_levels - 1}")
        if list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f"out_indices must be increasing and unique, got {out_indices}")
        return out_indices

    # ---- freezing ------------------------------------------------------------------------------------------
    def _frozen_param_names(self) -> set[str]:
        if self.frozen_stages < 0:
            return set()
        if not hasattr(self.inner, "group_matcher"):
            raise ValueError(f"{self.model_name} has no group_matcher, so frozen_stages is not supported")
        # timm's coarse groups: 0 = stem, k = k-th stage (in model order)
        groups = group_parameters(self.inner, self.inner.group_matcher(coarse=True))
        names = set()
        for gid in sorted(groups)[: self.frozen_stages + 1]:
            names.update(self.inner_prefix + n for n in groups[gid])
        return names

    def _freeze(self):
        self._frozen = self._frozen_param_names()
        for name, p in self.body.named_parameters():
            if name in self._frozen:
                p.requires_grad_(False)

    def _frozen_modules(self):
        for name, m in self.body.named_modules():
            own = [f"{name}.{n}" if name else n for n, _ in m.named_parameters(recurse=False)]
            if own and all(n in self._frozen for n in own):
                yield m

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self._frozen_modules():
                m.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, _BatchNorm):
                        m.eval()
        return self

    def filter_template(self) -> torch.nn.Module:
        """An unpruned body (final norm kept) for the family filter, which maps whole classifier checkpoints."""
        return timm.create_model(self.model_name, pretrained=False, num_classes=0, **self._create_kwargs)

    # ---- weights -------------------------------------------------------------------------------------------
    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained":
            unknown = set(cfg) - {"type", "checkpoint", "prefix", "map_location", "strict", "trust_checkpoint",
                                  "key"}
            if unknown:
                raise ValueError(f"unknown Pretrained init_cfg keys: {sorted(unknown)}")
            if cfg.get("prefix"):
                raise ValueError("init_cfg prefix is not supported; whole-model checkpoints are detected by their "
                                 "'backbone.' keys")
            self.load_checkpoint(cfg["checkpoint"], strict=cfg.get("strict", True),
                                 trust_checkpoint=cfg.get("trust_checkpoint", False), key=cfg.get("key"))
            self._is_init = True
            return
        super().init_weights()

    def load_checkpoint(self, path: str, strict: bool = True, trust_checkpoint: bool = False,
                        key: Optional[str] = None):
        sd = extract_state_dict(read_checkpoint(path, trust_checkpoint=trust_checkpoint), key=key)
        load_backbone_checkpoint(self, sd, type(self).checkpoint_filter, source=str(path), strict=strict)

    # ---- forward -------------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} expects NCHW images, got shape {tuple(x.shape)}")
        least = max(self.strides)
        if x.shape[-2] < least or x.shape[-1] < least:
            raise ValueError(
                f"{type(self).__name__}({self.arch_desc}): input {x.shape[-2]}x{x.shape[-1]} is smaller than the "
                f"deepest output stride {least}"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.check_input(x)
        feats = self._forward_body(x)
        if self.out_norm:
            feats = [getattr(self, f"outnorm{i}")(f) for i, f in zip(self.out_indices, feats)]
        # contiguous NCHW memory: timm's LayerNorm2d (the out-norm) returns a permuted view with channels-last
        # strides, convs (FPN) carry that layout on, and mmcv's RoIAlign / RoIPool read the raw memory as NCHW,
        # so RoI heads would pool scrambled features (a detector then learns its RPN but never its RoI heads)
        return tuple(f.contiguous() for f in feats)

    def log_summary(self):
        MMLogger.get_current_instance().info(
            f"{type(self).__name__}({self.arch_desc}): outputs {self.channels} channels at strides {self.strides}"
        )
