"""Vision Mamba (Vim): a plain (ViT-like) stack of bidirectional Mamba blocks over image patches.

Architecture of hustvl/Vim (``vim/models_mamba.py``, bimamba "v2"): patch embedding, a class token inserted in
the middle of the patch sequence, an absolute position embedding, ``depth`` blocks of
``residual += drop_path(h); h = mixer(RMSNorm(residual))`` with the residual stream kept in fp32, and a final
add + RMSNorm. Each mixer scans its tokens forward and backward with separate parameters per direction
(:class:`~vssm.layers.mamba_mixer.RoutedMambaMixer` on the ``bidir1d`` routes, one routed scan call), and the
classifier reads the class token.

Dense features: ``forward_intermediates()`` returns per-layer token maps at the patch stride, and
``features_only=True`` builds :class:`~vssm.models.vim_features.VimFeaturePyramid`, the 4-level (strides
4/8/16/32) pyramid of Vim's segmentation backbone.
"""


import math
from functools import partial
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import DropPath, lecun_normal_, register_notrace_function, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint

from vssm.kernels import bidir1d
from vssm.layers.mamba_mixer import RoutedMambaMixer

from .vim_features import VimFeaturePyramid
from .vim_weights import checkpoint_filter_fn, class_token_index, resample_pos_embed_with_token

__all__ = ["VisionMamba", "VimBlock", "VimPatchEmbed", "checkpoint_filter_fn", "resample_pos_embed_with_token"]

GLOBAL_POOLS = ("token", "avg", "last", "")
CLASS_TOKEN_POSITIONS = ("middle", "first")
INTERMEDIATE_SOURCES = ("stream", "mixer")


def add_rms_norm(h: torch.Tensor, residual: Optional[torch.Tensor], weight: torch.Tensor, eps: float,
                 residual_in_fp32: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """``residual = residual + h`` (or ``h`` when there is none yet), then RMSNorm of it.

    Follows mamba_ssm's fused add + RMSNorm: the sum is kept in fp32 when ``residual_in_fp32``, the norm is
    computed in fp32, and the normed output comes back in ``h``'s dtype. Returns (normed, residual).
    """
    if residual is None:
        residual = h.float() if residual_in_fp32 else h
    else:
        residual = residual.float() + h.float() if residual_in_fp32 else residual + h
    r = residual.float()
    normed = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return normed.to(h.dtype), residual


class VimRmsNorm(nn.Module):
    """RMSNorm of ``residual + h`` (of ``h`` alone without a residual), computed by :func:`add_rms_norm`."""

    def __init__(self, dim: int, eps: float = 1e-5, residual_in_fp32: bool = True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.residual_in_fp32 = residual_in_fp32
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, h: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        return add_rms_norm(h, residual, self.weight, self.eps, self.residual_in_fp32)[0]


class VimAddOnly(nn.Module):
    """Stands in for a pruned final norm: ``residual + h`` without normalising."""

    def forward(self, h: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        return h if residual is None else residual + h


@register_notrace_function  # raises on a shape: a leaf for torch.fx
def check_image_size(x: torch.Tensor, patch_size: Tuple[int, int]) -> None:
    if x.shape[-2] < patch_size[0] or x.shape[-1] < patch_size[1]:
        raise ValueError("input of " + str(x.shape[-2]) + "x" + str(x.shape[-1])
                         + " pixels is smaller than one patch of " + str(patch_size))


@torch.jit.ignore
def _resampled_table(pos_embed: torch.Tensor, grid: Tuple[int, int], table_grid: Tuple[int, int],
                     num_prefix_tokens: int, position: str) -> torch.Tensor:
    return resample_pos_embed_with_token(pos_embed, grid, table_grid, num_prefix_tokens, position)


@register_notrace_function  # branches on the token grid: a leaf for torch.fx
def embed_class_token_and_position(x: torch.Tensor, cls_token: Optional[torch.Tensor],
                                   pos_embed: Optional[torch.Tensor], grid: Tuple[int, int],
                                   table_grid: Tuple[int, int], position: str, dynamic: bool) -> torch.Tensor:
    """Insert the class token at its index among the patch tokens and add the position table, resampled
    (class-token row kept apart) when the token grid differs from the table's."""
    num_prefix = 0
    if cls_token is not None:
        num_prefix = 1
        i = class_token_index(x.shape[1], position)
        x = torch.cat([x[:, :i], cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x[:, i:]], dim=1)
    if pos_embed is not None:
        if grid[0] != table_grid[0] or grid[1] != table_grid[1]:
            if not dynamic:
                raise ValueError("input gives a " + str(grid) + " token grid but the position table is for "
                                 + str(table_grid) + "; build with dynamic_img_size=True")
            pos_embed = _resampled_table(pos_embed, grid, table_grid, num_prefix, position)
        x = x + pos_embed
    return x


class VimPatchEmbed(nn.Module):
    """Patches of ``patch_size`` every ``stride`` pixels (overlapping when stride < patch), no padding."""

    def __init__(self, img_size=224, patch_size=16, stride=16, in_chans=3, embed_dim=192, device=None, dtype=None):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        self.stride = stride
        self.grid_size = self.feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=stride,
                              device=device, dtype=dtype)

    def set_img_size(self, img_size) -> None:
        self.img_size = to_2tuple(img_size)
        self.grid_size = self.feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_size(self, img_size) -> Tuple[int, int]:
        """Token grid (rows, cols) for an image of ``img_size`` (H, W)."""
        return tuple((s - p) // self.stride + 1 for s, p in zip(img_size, self.patch_size))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        check_image_size(x, self.patch_size)
        x = self.proj(x)
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


class VimBlock(nn.Module):
    """``residual += drop_path(h); h = mixer(norm(residual))``, returning (h, residual).

    The drop path acts on the previous block's mixer output, as in the official code (so block 0's is unused).
    """

    def __init__(self, dim: int, mixer: nn.Module, norm_eps: float = 1e-5, drop_path: float = 0.,
                 residual_in_fp32: bool = True, device=None, dtype=None):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.norm = VimRmsNorm(dim, eps=norm_eps, device=device, dtype=dtype)
        self.mixer = mixer
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, h: torch.Tensor,
                residual: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if residual is not None:
            h = self.drop_path(h)
        normed, residual = add_rms_norm(h, residual, self.norm.weight, self.norm.eps, self.residual_in_fp32)
        return self.mixer(normed), residual


class VisionMamba(nn.Module):
    """Vision Mamba (Vim).

    Args:
        img_size, patch_size, patch_stride, in_chans: patch embedding (``patch_stride < patch_size`` overlaps).
        num_classes, global_pool: head; pools are "token" (the class token), "avg" (mean of the patch tokens),
            "last" (the last token) or "" (none).
        embed_dim, depth, d_state, d_conv, expand, dt_rank: sizes.
        class_token: add a class token; class_token_position: "middle" (index ``num_patches // 2``, Vim's
            default) or "first".
        pos_embed: absolute position embedding; dynamic_img_size: resample it on the fly for other input sizes.
        pos_drop_rate, drop_rate, drop_path_rate: dropout after the position embedding, before the head, and
            the stochastic depth rate (linear schedule over the mixers' outputs).
        norm_eps, residual_in_fp32, divide_out: RMSNorm epsilon, fp32 residual stream, halving the sum of the
            two directions.
    """

    def __init__(
            self,
            img_size: int = 224,
            patch_size: int = 16,
            patch_stride: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "token",
            embed_dim: int = 192,
            depth: int = 24,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank="auto",
            class_token: bool = True,
            class_token_position: str = "middle",
            pos_embed: bool = True,
            dynamic_img_size: bool = True,
            pos_drop_rate: float = 0.,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
            norm_eps: float = 1e-5,
            residual_in_fp32: bool = True,
            divide_out: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(f"class_token_position must be one of {CLASS_TOKEN_POSITIONS}, got {class_token_position!r}")
        dd = dict(device=device, dtype=dtype)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.class_token_position = class_token_position
        self.dynamic_img_size = dynamic_img_size
        self.residual_in_fp32 = residual_in_fp32
        self.grad_checkpointing = False

        self.patch_embed = VimPatchEmbed(img_size, patch_size, patch_stride, in_chans, embed_dim, **dd)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **dd)) if class_token else None
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + self.num_prefix_tokens, embed_dim, **dd)) if pos_embed else None
        self.pos_drop = nn.Dropout(pos_drop_rate)

        mixer = partial(RoutedMambaMixer, routes=bidir1d(), d_state=d_state, d_conv=d_conv, expand=expand,
                        dt_rank=dt_rank, dt_bias_init_routes=(0,), divide_by_routes=divide_out, **dd)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        inter_dpr = [0.0] + dpr  # block i drops the output of mixer i-1
        self.blocks = nn.ModuleList([
            VimBlock(embed_dim, mixer(embed_dim), norm_eps, inter_dpr[i], residual_in_fp32, **dd)
            for i in range(depth)])
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()  # on the last mixer
        self.norm = VimRmsNorm(embed_dim, eps=norm_eps, residual_in_fp32=residual_in_fp32, **dd)
        r = patch_stride
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=r) for i in range(depth)]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The official initialisation: lecun-normal patch conv, trunc-normal(0.02) head, tokens and position
        table, zero linear biases, and out_proj re-drawn and scaled by 1/sqrt(depth)."""
        if self.patch_embed.proj.weight.is_meta:
            return
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=.02)
            nn.init.zeros_(self.head.bias)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)
        depth = len(self.blocks)
        for m in self.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, RoutedMambaMixer):
                nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
                m.out_proj.weight /= math.sqrt(depth)

    @torch.jit.ignore
    def no_weight_decay(self):
        names = {"pos_embed", "cls_token"}
        for n, p in self.named_parameters():
            if getattr(p, "_no_weight_decay", False):
                names.add(n)
        return {n for n in names if n in dict(self.named_parameters())}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(stem=r"^cls_token|^pos_embed|^patch_embed",
                    blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
            if global_pool == "token" and self.cls_token is None:
                raise ValueError("global_pool='token' needs a class token")
            self.global_pool = global_pool
        self.num_classes = num_classes
        w = self.patch_embed.proj.weight  # device / dtype reference (the norm may have been pruned)
        self.head = nn.Linear(self.embed_dim, num_classes, device=w.device, dtype=w.dtype) \
            if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    @torch.jit.ignore
    def set_input_size(self, img_size=None, patch_size=None) -> None:
        """Change the nominal input size: the position table is resampled to the new token grid (class-token
        row kept apart and put back at the new middle). The patch size cannot change."""
        if patch_size is not None and to_2tuple(patch_size) != self.patch_embed.patch_size:
            raise ValueError(f"set_input_size cannot change the patch size {self.patch_embed.patch_size}")
        if img_size is None:
            return
        old_grid = self.patch_embed.grid_size
        self.patch_embed.set_img_size(img_size)
        if self.pos_embed is not None and self.patch_embed.grid_size != old_grid:
            table = resample_pos_embed_with_token(self.pos_embed.detach(), self.patch_embed.grid_size, old_grid,
                                                  self.num_prefix_tokens, self.class_token_position)
            self.pos_embed = nn.Parameter(table, requires_grad=self.pos_embed.requires_grad)

    def class_token_index(self, num_patches: int) -> int:
        """Position of the class token in a sequence of ``num_patches`` patch tokens plus the class token."""
        return class_token_index(num_patches, self.class_token_position)

    def _pos_embed(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """Insert the class token at its position and add the (resampled if needed) position table."""
        x = embed_class_token_and_position(x, self.cls_token, self.pos_embed, grid, self.patch_embed.grid_size,
                                           self.class_token_position, self.dynamic_img_size)
        return self.pos_drop(x)

    def _remove_class_token(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Split (B, N, C) tokens into patch tokens (B, N-1, C) and the class token (B, 1, C)."""
        if self.cls_token is None:
            return x, None
        i = self.class_token_index(x.shape[1] - 1)
        return torch.cat([x[:, :i], x[:, i + 1:]], dim=1), x[:, i:i + 1]

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
            take_from: str = "stream",
    ):
        """Token maps after the chosen blocks, and the final features.

        Args:
            indices: last n blocks if int, all if None, else the block indices.
            take_from: "stream" (the residual stream after the block: residual + its mixer's output) or "mixer"
                (the block's mixer output alone, what Vim's segmentation backbone taps).
            norm: apply the final RMSNorm to the intermediates.
            output_fmt: "NCHW" maps or "NLC" token sequences (class token removed in both).
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        if take_from not in INTERMEDIATE_SOURCES:
            raise ValueError(f"take_from must be one of {INTERMEDIATE_SOURCES}, got {take_from!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        B = x.shape[0]
        h, grid = self.patch_embed(x)
        h = self._pos_embed(h, grid)
        residual: Optional[torch.Tensor] = None
        blocks = self.blocks if torch.jit.is_scripting() or not stop_early else self.blocks[:max_index + 1]
        intermediates = []
        for i, blk in enumerate(blocks):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                h, residual = checkpoint(blk, h, residual)
            else:
                h, residual = blk(h, residual)
            if i in take_indices:
                tap = h if take_from == "mixer" else residual + h
                if norm:
                    tap = self.norm(tap.to(h.dtype))
                intermediates.append(tap.to(h.dtype))
        prefix = []
        for j, t in enumerate(intermediates):
            intermediates[j], cls = self._remove_class_token(t)
            prefix.append(cls)
        if output_fmt == "NCHW":
            intermediates = [t.reshape(B, grid[0], grid[1], -1).permute(0, 3, 1, 2).contiguous()
                             for t in intermediates]
        if return_prefix_tokens and self.cls_token is not None:
            intermediates = list(zip(intermediates, prefix))
        if intermediates_only:
            return intermediates
        return self._final_norm(h, residual), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = VimAddOnly()
        if prune_head:
            self.reset_classifier(0, "" if self.cls_token is None else None)
        return take_indices

    def _final_norm(self, h: torch.Tensor, residual: Optional[torch.Tensor]) -> torch.Tensor:
        return self.norm(self.drop_path(h), residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens (B, num_patches + class token, C), the class token at its position."""
        h, grid = self.patch_embed(x)
        h = self._pos_embed(h, grid)
        residual: Optional[torch.Tensor] = None
        for blk in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                h, residual = checkpoint(blk, h, residual)
            else:
                h, residual = blk(h, residual)
        return self._final_norm(h, residual)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, self.class_token_index(x.shape[1] - 1)]
        elif self.global_pool == "avg":
            x = self._remove_class_token(x)[0].mean(dim=1)
        elif self.global_pool == "last":
            x = x[:, -1]
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> VisionMamba:
    # features_only builds the 4-level pyramid; which blocks feed it and what they give are its own options
    feature_cfg = dict(feature_cls=VimFeaturePyramid, out_indices=(0, 1, 2, 3))
    for key in ("layer_indices", "take_from"):
        if key in kwargs:
            if not kwargs.get("features_only", False):
                raise TypeError(f"{key}= is an option of the features_only pyramid; pass features_only=True")
            feature_cfg[key] = kwargs.pop(key)
    return build_model_with_cfg(
        VisionMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )


def _cfg(**kwargs):
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embed.proj", "classifier": "head",
        "license": "apache-2.0", "paper_ids": "arXiv:2401.09417", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "vim_tiny_patch16_224": _cfg(),
    "vim_tiny_patch16_stride8_224": _cfg(),
    "vim_small_patch16_224": _cfg(),
    "vim_small_patch16_stride8_224": _cfg(),
    "vim_base_patch16_224": _cfg(),
    # a small configuration for tests (as timm's own test_* models): every code path, little compute
    "test_vim": _cfg(input_size=(3, 64, 64)),
})


@register_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(patch_size=16, patch_stride=16, embed_dim=192, depth=24)
    return _create_vim("vim_tiny_patch16_224", pretrained, **dict(args, **kwargs))


@register_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(patch_size=16, patch_stride=8, embed_dim=192, depth=24)
    return _create_vim("vim_tiny_patch16_stride8_224", pretrained, **dict(args, **kwargs))


@register_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(patch_size=16, patch_stride=16, embed_dim=384, depth=24)
    return _create_vim("vim_small_patch16_224", pretrained, **dict(args, **kwargs))


@register_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(patch_size=16, patch_stride=8, embed_dim=384, depth=24)
    return _create_vim("vim_small_patch16_stride8_224", pretrained, **dict(args, **kwargs))


@register_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(patch_size=16, patch_stride=16, embed_dim=768, depth=24)
    return _create_vim("vim_base_patch16_224", pretrained, **dict(args, **kwargs))


@register_model
def test_vim(pretrained: bool = False, **kwargs) -> VisionMamba:
    args = dict(img_size=64, patch_size=16, patch_stride=16, embed_dim=32, depth=4, d_state=4, drop_path_rate=0.0)
    return _create_vim("test_vim", pretrained, **dict(args, **kwargs))
