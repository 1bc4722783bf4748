"""Parameters of the JAX/flax reference implementation <-> our state dict.

The reference's parameter tree (``params`` of ``CONVS5_NOVQ`` / ``CONVLSTM_NOVQ``) is accepted as a
nested dict of arrays (as flax serialisation restores it, with or without a top-level "params") or as a
flat mapping with '/'-joined keys (for example an ``.npz``). Every key must be used and every tensor of the
model filled, or the conversion fails and names what is left over.

Layout changes: conv kernels HWIO -> OIHW, dense kernels (in, out) -> 1x1 conv (out, in, 1, 1), norm
"scale" -> "weight", the ConvLSTM kernel A from HWIO to OIHW. ConvS5's own parameters (B, C, Lambda_re,
Lambda_im, log_step) are stored in the reference's layout already.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from .blocks import ChannelLayerNorm, HalfGLUOutput, ResNetBlock, ResnetOutput, StandardOutput
from .convlstm import ConvLSTMCell
from .convs5 import ConvS5SSM

__all__ = ["flatten_flax_params", "flax_key_map", "convert_flax_params", "to_flax_params"]

# kinds of layout change
SAME, CONV, DENSE = "same", "conv", "dense"


def flatten_flax_params(tree) -> dict:
    """Nested dict or '/'-joined mapping -> {'a/b/c': array}, dropping a top-level 'params'."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}/{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                walk(value, name)
            else:
                flat[name] = value

    if not isinstance(tree, Mapping) and not hasattr(tree, "files"):
        raise TypeError(f"expected a (nested) mapping of arrays or an npz file, got {type(tree).__name__}")
    walk(dict(tree.items()) if hasattr(tree, "files") else tree, "")
    if flat and all(k.startswith("params/") for k in flat):
        flat = {k[len("params/"):]: v for k, v in flat.items()}
    return flat


def _norm(t: str, f: str, scale_name: str = "scale"):
    return [(f"{t}.weight", f"{f}/{scale_name}", SAME), (f"{t}.bias", f"{f}/bias", SAME)]


def _conv(t: str, f: str, conv: nn.Conv2d, kind: str = CONV):
    out = [(f"{t}.weight", f"{f}/kernel", kind)]
    if conv.bias is not None:
        out.append((f"{t}.bias", f"{f}/bias", SAME))
    return out


def _resnet_block(t: str, f: str, block: ResNetBlock):
    out = _conv(f"{t}.skip", f"{f}/skip", block.skip) if block.skip is not None else []
    out += _norm(f"{t}.norm1", f"{f}/GroupNorm_0") + _conv(f"{t}.conv1", f"{f}/Conv_0", block.conv1)
    out += _norm(f"{t}.norm2", f"{f}/GroupNorm_1") + _conv(f"{t}.conv2", f"{f}/Conv_1", block.conv2)
    return out + [(f"{t}.bias", f"{f}/AddBias_0/bias", SAME)]


def _coder(t: str, f: str, coder: nn.Module):
    out = _conv(f"{t}.stem", f"{f}/Conv_0", coder.stem)
    blocks = [(i, m) for i, m in enumerate(coder.layers) if isinstance(m, ResNetBlock)]
    for j, (i, block) in enumerate(blocks):
        out += _resnet_block(f"{t}.layers.{i}", f"{f}/ResNetBlock_{j}", block)
    if hasattr(coder, "head"):
        out += _norm(f"{t}.norm", f"{f}/LayerNorm_0") + _conv(f"{t}.head", f"{f}/Dense_0", coder.head, DENSE)
    return out


def _cell(t: str, f: str, cell: nn.Module):
    if isinstance(cell, ConvLSTMCell):
        return [(f"{t}.A", f"{f}/A", CONV)]
    if not isinstance(cell, ConvS5SSM):
        raise TypeError(f"no flax layout known for {type(cell).__name__}")
    out = [(f"{t}.{n}", f"{f}/{n}", SAME) for n in ("Lambda_re", "Lambda_im", "B", "C", "log_step")]
    c_d, tc, fc = cell.c_d, f"{t}.c_d", f"{f}/C_D_conv"
    if isinstance(c_d, ResnetOutput):
        out += _norm(f"{tc}.norm1", f"{fc}/GroupNorm_0") + _conv(f"{tc}.conv1", f"{fc}/Conv_0", c_d.conv1)
        out += _norm(f"{tc}.norm2", f"{fc}/GroupNorm_1") + _conv(f"{tc}.conv2", f"{fc}/Conv_1", c_d.conv2)
    elif isinstance(c_d, StandardOutput):
        out += _conv(f"{tc}.conv", f"{fc}/Conv_0", c_d.conv) + _norm(f"{tc}.norm", f"{fc}/GroupNorm_0")
    elif isinstance(c_d, HalfGLUOutput):
        out += _norm(f"{tc}.norm", f"{fc}/norm") + _conv(f"{tc}.proj", f"{fc}/Dense_0", c_d.proj, DENSE)
    return out


def flax_key_map(model: nn.Module) -> list:
    """(our state-dict key, reference key, layout change) for every parameter of a VideoPredictor."""
    out = _coder("encoder", "encoder", model.encoder) + _coder("decoder", "decoder", model.decoder)
    out += [("action_embeds.weight", "action_embeds/embedding", SAME)]
    out += _conv("action_conv", "action_conv/Conv_0", model.action_conv)
    for i, layer in enumerate(model.sequence_model.layers):
        t, f = f"sequence_model.layers.{i}", f"sequence_model/layers_{i}"
        if isinstance(layer.norm, ChannelLayerNorm):
            out += _norm(f"{t}.norm", f"{f}/norm")
        out += _cell(f"{t}.cell", f"{f}/seq", layer.cell)
    return out


def _to_torch(value, kind: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(value, dtype=np.float32))
    if kind == CONV:
        return x.permute(3, 2, 0, 1)
    if kind == DENSE:
        return x.T[:, :, None, None]
    return x


def _to_flax(value: torch.Tensor, kind: str) -> np.ndarray:
    x = value.detach().cpu().float()
    if kind == CONV:
        x = x.permute(2, 3, 1, 0)
    elif kind == DENSE:
        x = x[:, :, 0, 0].T
    return x.numpy()


def convert_flax_params(tree, model: nn.Module) -> dict:
    """The reference's parameters as a state dict for ``model`` (a VideoPredictor of the same config)."""
    flat = flatten_flax_params(tree)
    ours = model.state_dict()
    table = flax_key_map(model)
    missing = sorted({f for _, f, _ in table} - set(flat))
    unused = sorted(set(flat) - {f for _, f, _ in table})
    if missing or unused:
        raise ValueError(f"flax parameters do not match the model: missing {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''} ({len(missing)}), unused {unused[:8]}"
                         f"{' ...' if len(unused) > 8 else ''} ({len(unused)})")
    state = {}
    for tkey, fkey, kind in table:
        value = _to_torch(flat[fkey], kind)
        if tuple(value.shape) != tuple(ours[tkey].shape):
            raise ValueError(f"{fkey} has shape {tuple(np.shape(flat[fkey]))}, which converts to "
                             f"{tuple(value.shape)}, but {tkey} is {tuple(ours[tkey].shape)}")
        state[tkey] = value.to(ours[tkey].dtype)
    left = sorted(set(ours) - set(state))
    if left:
        raise ValueError(f"model tensors without a flax counterpart: {left}")
    return state


def to_flax_params(model: nn.Module, nested: bool = True):
    """Our parameters in the reference's layout: a nested dict (or '/'-joined flat dict) of numpy arrays."""
    ours = model.state_dict()
    flat = {}
    for tkey, fkey, kind in flax_key_map(model):
        flat[fkey] = _to_flax(ours[tkey], kind)
    if not nested:
        return flat
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree
