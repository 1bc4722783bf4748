"""Convert an official checkpoint into this library's layout, for every family, with a full key report.

    python tools/convert.py model   --model vmamba_tiny  OFFICIAL.pth OUT.pth [--num-classes N] [--verify ...]
    python tools/convert.py mm      --config configs/mmdet/vmamba/<config>.py  OFFICIAL.pth OUT.pth
    python tools/convert.py medical --network segmamba|vmunet|vmunet-from-vmamba-v0 [--kwargs JSON] SRC OUT.pth
    python tools/convert.py detect  CHECKPOINT          (which family / registered model the file looks like)

``model`` takes any registered timm model (VMamba v0/v2, Vim, MSVMamba, EfficientVMamba, and ConvS5 /
ConvLSTM from the JAX reference's parameters as a flat '/'-keyed ``.npz`` or a nested pickled tree); ``mm``
an MMDetection / MMSegmentation checkpoint whose backbone is in official names; ``medical`` the official
VM-UNet and SegMamba weights, or VM-UNet's initialisation from a VMamba v0 classifier.

Each command delegates to the family's own converter (``checkpoint_filter_fn`` of the model's module,
``vssm.mm.convert``, ``vssm.medical.convert``, ``vssm.video.flax_convert``); this tool adds the report.
It prints every source key mapped (``src -> ours``; several sources when the converter stacks them),
every source key dropped with the reason, and every target key missing with the reason, and fails (exit
status 1, nothing written) on a key it cannot explain. The result is loaded strictly before it is saved.
Which source keys went where is found by running the converter once on a copy of the checkpoint whose
tensors are filled with their own index: each converted tensor then holds the indices it came from.

``--verify`` (``model`` only) builds the official model from ``--official-path`` (a checkout of the
official repository) next to ours, loads the same weights into both and compares one forward pass; if the
official code cannot be imported it says so and skips the check. Only VMamba has an official builder.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import re
import sys
from collections.abc import Mapping

import numpy as np
import timm
import torch

import vssm  # noqa: F401  (registers the models)
from vssm.registry import list_models


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message says why and, where it can, what the file is."""


# ---------------------------------------------------------------------------------------------------------
# reading and recognising checkpoints

_WRAPPERS = ("model", "state_dict", "model_ema", "net", "network", "params")


def load_checkpoint(path: str, trust: bool = False):
    """A ``.npz`` (flat flax parameters) or a torch file; pickled objects only with ``trust``."""
    if not os.path.exists(path):
        raise ConversionError(f"checkpoint not found: {path}")
    if path.endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as err:
        if trust:
            raise
        raise ConversionError(f"{path} holds more than tensors ({type(err).__name__}); rerun with "
                              "--trust-checkpoint if you trust the file") from err


def unwrap(ckpt) -> tuple[dict, str]:
    """(flat state dict, the entry it came from). Flax trees are flattened to '/'-joined keys."""
    from vssm.video.flax_convert import flatten_flax_params

    if not isinstance(ckpt, Mapping):
        raise ConversionError(f"expected a dict of tensors, got {type(ckpt).__name__}")
    entry = ""
    for key in _WRAPPERS:
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt, entry = ckpt[key], key
            break
    if any(isinstance(v, Mapping) for v in ckpt.values()):  # a nested (flax) tree
        ckpt = flatten_flax_params(ckpt)
    bad = [k for k, v in ckpt.items() if not (torch.is_tensor(v) or isinstance(v, np.ndarray))]
    if bad:
        raise ConversionError(f"entries that are not tensors: {bad[:8]}")
    return dict(ckpt), entry


def _shape(v) -> tuple:
    return tuple(v.shape)


def detect_family(sd: Mapping) -> str | None:
    """The family a state dict looks like, from its key names and shapes (None if unknown)."""
    keys = list(sd)
    has = lambda pattern: any(re.search(pattern, k) for k in keys)  # noqa: E731
    if has(r"/"):
        return "convs5" if has(r"/Lambda_re$") else "convlstm" if has(r"/seq/A$") else "flax"
    if has(r"^backbone\.") and has(r"^(neck|decode_head|rpn_head|roi_head|auxiliary_head|bbox_head)\."):
        return "mm"
    if has(r"\.mamba\.A_s_log$"):
        return "segmamba"
    if has(r"(^|\.)layers_up\.\d+\."):
        return "vmunet"
    if has(r"^(layers\.\d+\.mixer\.A_b_log|norm_f\.weight)$"):
        return "vim"
    if has(r"\.conv_branch\.") or has(r"^layers\.\d+\.\d+\.conv_pw\."):
        return "efficient_vmamba"
    if has(r"\.convFFN\.") or has(r"\.op\.se\.fc\."):
        return "msvmamba"
    x_proj = [v for k, v in sd.items() if k.endswith("x_proj_weight")]
    if x_proj:
        return "vmamba_v2" if has(r"^patch_embed\.5\.") else "vmamba_v0"
    if has(r"^(stem|stages)\.") or has(r"^blocks\.\d+\.mixer\."):
        return "ours"
    return None


_FAMILY_MODULES = {"vmamba_v2": "vmamba", "vmamba_v0": "vmamba", "vim": "vim", "msvmamba": "msvmamba",
                   "efficient_vmamba": "efficient_vmamba", "convs5": "convs5", "convlstm": "convs5"}
_OTHER_COMMANDS = {"mm": "a detection / segmentation checkpoint: use `convert.py mm --config ...`",
                   "segmamba": "SegMamba weights: use `convert.py medical --network segmamba`",
                   "vmunet": "VM-UNet weights: use `convert.py medical --network vmunet`",
                   "ours": "already in this library's layout: no conversion needed"}


def model_module(name: str) -> str:
    if name not in list_models():
        close = [m for m in list_models() if name.split("_")[0] in m] or list_models()
        raise ConversionError(f"unknown model {name!r}; registered models: {', '.join(close)}")
    return timm.models.model_entrypoint(name).__module__


def filter_fn_for(name: str):
    module = importlib.import_module(model_module(name))
    if not hasattr(module, "checkpoint_filter_fn"):
        raise ConversionError(f"{module.__name__} has no checkpoint_filter_fn")
    return module.checkpoint_filter_fn


@functools.lru_cache(maxsize=None)
def _meta_model(name: str):
    with torch.device("meta"):
        return timm.create_model(name)


def _fits(name: str, sd: Mapping) -> bool:
    model = _meta_model(name)
    try:
        out = filter_fn_for(name)(dict(sd), model)
    except Exception:
        return False
    ours = model.state_dict()
    return set(out) == set(ours) and all(_shape(out[k]) == _shape(ours[k]) for k in ours)


def guess_models(sd: Mapping) -> tuple[str | None, list[str]]:
    """(family, registered models of that family whose shapes the checkpoint fits exactly)."""
    family = detect_family(sd)
    module = _FAMILY_MODULES.get(family)
    if module is None:
        return family, []
    names = [n for n in list_models() if model_module(n).endswith("." + module)
             and (family not in ("convs5", "convlstm") or family in n)]
    return family, [n for n in names if _fits(n, sd)]


def describe(sd: Mapping) -> str:
    family, fits = guess_models(sd)
    if family is None:
        return "it does not look like any family this library converts"
    if family in _OTHER_COMMANDS:
        return f"it looks like {_OTHER_COMMANDS[family]}"
    if fits:
        return f"it looks like a {family} checkpoint of {' / '.join(fits)}"
    return f"it looks like a {family} checkpoint of a size no registered model has"


def check_family(sd: Mapping, expected: tuple, target: str) -> None:
    """Fail early, saying what the file looks like, when it is clearly of another family."""
    family = detect_family(sd)
    if family is not None and family != "ours" and family not in expected:
        raise ConversionError(f"checkpoint does not fit {target}: {describe(sd)}")


# ---------------------------------------------------------------------------------------------------------
# which source key went where

def _probe(sd: Mapping) -> tuple[dict, dict]:
    """A copy of ``sd`` with every tensor filled with its key's index (from 1); and index -> key."""
    probe, index = {}, {}
    for i, (k, v) in enumerate(sd.items(), start=1):
        index[i] = k
        if isinstance(v, np.ndarray):
            probe[k] = np.full(v.shape, i, dtype=np.float32)
        elif v.dtype == torch.bool or v.device.type == "meta":
            probe[k] = v
        else:
            probe[k] = torch.full(v.shape, i, dtype=torch.float32 if v.is_floating_point() else v.dtype)
    return probe, index


def sources_of(value, index: dict) -> list[str]:
    """The source keys whose index values a converted probe tensor holds ([] if it was computed)."""
    if not torch.is_tensor(value) or not value.numel() or value.device.type == "meta" or value.dtype == torch.bool:
        return []
    v = value.detach().double()
    if (v - v.round()).abs().max() > 1e-3:
        return []
    return [index[int(i)] for i in torch.unique(v.round()).tolist() if int(i) in index]


def trace(convert, sd: Mapping) -> dict[str, list[str]]:
    """Run ``convert(state_dict) -> converted`` on the index probe: converted key -> its source keys."""
    probe, index = _probe(sd)
    return {k: sources_of(v, index) for k, v in convert(probe).items()}


class Report:
    """Every source key mapped or dropped, every target key missing, and what is left unexplained."""

    def __init__(self, source: Mapping, converted: Mapping, target: Mapping, origins: dict[str, list[str]]):
        self.mapped = [(origins.get(k, []), k, _shape(v)) for k, v in converted.items()]
        used = {s for srcs, _, _ in self.mapped for s in srcs}
        self.dropped = {k: None for k in source if k not in used}
        self.missing = {k: None for k in target if k not in converted}
        self.unexpected = [k for k in converted if k not in target]
        self.misshapen = [f"{k}: converted {_shape(converted[k])}, model {_shape(target[k])}"
                          for k in converted if k in target and _shape(converted[k]) != _shape(target[k])]
        self.source_shapes = {k: _shape(v) for k, v in source.items()}

    def explain_dropped(self, reason_fn) -> None:
        for k in self.dropped:
            self.dropped[k] = self.dropped[k] or reason_fn(k)

    def explain_missing(self, reason_fn) -> None:
        for k in self.missing:
            self.missing[k] = self.missing[k] or reason_fn(k)

    def problems(self) -> list[str]:
        out = [f"dropped without a reason: {k}" for k, r in self.dropped.items() if not r]
        out += [f"missing without a reason: {k}" for k, r in self.missing.items() if not r]
        out += [f"not in the model: {k}" for k in self.unexpected]
        out += [f"shape mismatch: {m}" for m in self.misshapen]
        return out

    def lines(self) -> list[str]:
        out = []
        for srcs, key, shape in self.mapped:
            src = " + ".join(srcs) if srcs else "(computed)"
            shapes = " + ".join(str(self.source_shapes[s]) for s in srcs)
            out.append(f"mapped   {src} -> {key}  {shapes} -> {shape}")
        out += [f"dropped  {k}  ({r or 'NO REASON'})" for k, r in self.dropped.items()]
        out += [f"missing  {k}  ({r or 'NO REASON'})" for k, r in self.missing.items()]
        out += [f"ERROR    {p}" for p in self.problems()]
        return out

    def summary(self) -> str:
        return (f"{len(self.mapped)} tensors mapped, {len(self.dropped)} source keys dropped, "
                f"{len(self.missing)} target keys missing, {len(self.problems())} unexplained")


# ---------------------------------------------------------------------------------------------------------
# the families

def convert_model(name: str, sd: Mapping, num_classes: int | None = None):
    """Official checkpoint -> state dict of the registered model ``name``. Returns (state, report, model)."""
    filter_fn = filter_fn_for(name)
    module = model_module(name).rsplit(".", 1)[-1]
    check_family(sd, tuple(f for f, m in _FAMILY_MODULES.items() if m == module), name)
    kwargs = {} if num_classes is None else dict(num_classes=num_classes)
    model = timm.create_model(name, pretrained=False, **kwargs)
    head = [k for k in sd if re.search(r"(^|\.)head\.(fc\.)?weight$", k)]
    if head and num_classes is None and getattr(model, "num_classes", 0) and \
            _shape(sd[head[0]])[0] != model.num_classes:
        raise ConversionError(f"the checkpoint's classifier {head[0]} has {_shape(sd[head[0]])[0]} classes, "
                              f"{name} {model.num_classes}: pass --num-classes {_shape(sd[head[0]])[0]} "
                              "(or 0 to drop the classifier)")
    try:
        state = filter_fn(dict(sd), model)
        origins = trace(lambda p: filter_fn(p, model), sd)
    except Exception as err:
        raise ConversionError(f"checkpoint does not fit {name}: {err}\n{describe(sd)}") from err
    report = Report(sd, state, model.state_dict(), origins)
    classifier = num_classes == 0
    report.explain_dropped(lambda k: "classifier, removed by --num-classes 0"
                           if classifier and re.search(r"(^|\.)head\.", k) else None)
    if report.misshapen or report.unexpected:
        raise ConversionError(f"checkpoint does not fit {name}: {report.problems()[:6]}\n{describe(sd)}")
    return state, report, model


def convert_mm(config: str, sd: Mapping):
    """Detector / segmentor checkpoint (backbone in official names) -> our config's model."""
    from vssm.mm.convert import build_model_from_config, convert_state_dict

    check_family(sd, ("mm",), config)
    model = build_model_from_config(config)
    if not any(k.startswith("backbone.") for k in sd):
        raise ConversionError(f"no backbone.* keys: not a detection / segmentation checkpoint; {describe(sd)}")
    try:
        state, info = convert_state_dict(dict(sd), model)
        origins = trace(lambda p: convert_state_dict(p, model)[0], sd)
    except Exception as err:
        raise ConversionError(f"checkpoint does not fit {config}: {err}") from err
    # what the family filter did with each backbone key, to name the reason of those it left out; the template is
    # the detection body itself (official detection backbones have no classifier or final norm, like ours)
    backbone, template = model.backbone, model.backbone.inner
    body = {k[len("backbone."):]: v for k, v in sd.items()
            if k.startswith("backbone.") and not re.match(r"^backbone\.(outnorm\d+|fpn\d)\.", k)}
    filtered = trace(lambda p: type(backbone).checkpoint_filter(p, template), body)
    via = {s: k for k, srcs in filtered.items() for s in srcs}

    def reason(key):
        bare = key[len("backbone."):]
        if bare in via and via[bare] in info["dropped"]:
            return info["dropped"][via[bare]]
        if bare in body and bare not in via:
            return "dropped by the family filter: a classifier head, or a class token the backbone is built without"
        return None

    report = Report(sd, state, model.state_dict(), origins)
    report.explain_dropped(reason)
    return state, report, model


_MEDICAL = ("segmamba", "vmunet", "vmunet-from-vmamba-v0")


def convert_medical(network: str, sd: Mapping, kwargs: dict | None = None):
    """Official SegMamba / VM-UNet weights (or a VMamba v0 classifier for VM-UNet) -> our network."""
    from vssm.medical import SegMamba, VMUNet, convert as med

    if network not in _MEDICAL:
        raise ConversionError(f"unknown medical network {network!r}; choose one of {_MEDICAL}")
    kwargs = dict(kwargs or {})
    check_family(sd, {"segmamba": ("segmamba",), "vmunet": ("vmunet",),
                      "vmunet-from-vmamba-v0": ("vmamba_v0",)}[network], network)
    net = SegMamba(**kwargs) if network == "segmamba" else VMUNet(**kwargs)
    fn = {"segmamba": med.convert_segmamba_official, "vmunet": med.convert_vmunet_official,
          "vmunet-from-vmamba-v0": med.vmunet_init_from_vmamba_v0}[network]
    try:
        state, _ = fn(dict(sd), net)
        origins = trace(lambda p: fn(p, net)[0], sd)
    except Exception as err:
        raise ConversionError(f"checkpoint does not fit {network} {kwargs}: {err}\n{describe(sd)}") from err
    report = Report(sd, state, net.state_dict(), origins)
    if network == "vmunet-from-vmamba-v0":  # the official load_from: same name and shape, or skipped
        report.explain_dropped(lambda k: "no VM-UNet tensor of the same name and shape (official load_from "
                                         "skips it too)")
        report.explain_missing(lambda k: "not in a classification checkpoint: left at initialisation, as the "
                                         "official load_from does")
    return state, report, net


# ---------------------------------------------------------------------------------------------------------
# --verify: the official model beside ours

def _official_vmamba(path: str, model, name: str):
    sys.path.insert(0, os.path.join(path, "classification"))
    from models.vmamba import VSSM  # the official module tree

    v2 = "stages.0.blocks.0.mlp.fc1.weight" in model.state_dict()
    depths = [len(s.blocks) for s in model.stages]
    dims = [s.blocks[0].norm1.weight.shape[0] for s in model.stages]
    common = dict(depths=depths, dims=dims, num_classes=model.num_classes, drop_path_rate=0.0,
                  ssm_dt_rank="auto", ssm_act_layer="silu", ssm_conv=3, ssm_drop_rate=0.0, ssm_init="v0",
                  mlp_act_layer="gelu", mlp_drop_rate=0.0, gmlp=False, patch_norm=True, use_checkpoint=False)
    ssm = model.stages[0].blocks[0].mixer.ssm
    d_state = ssm.A_log.shape[-1]
    ratio = ssm.A_log.shape[1] / dims[0]
    if v2:
        official = VSSM(**common, ssm_d_state=d_state, ssm_ratio=ratio, ssm_conv_bias=False,
                        forward_type="v05_noz", mlp_ratio=4.0, norm_layer="ln2d", downsample_version="v3",
                        patchembed_version="v2")
        for m in official.modules():  # on CPU: the official code's own PyTorch scan and cross-scan
            core = getattr(m, "forward_core", None)
            if isinstance(core, functools.partial) and "corev2" in getattr(core.func, "__name__", ""):
                m.forward_core = functools.partial(core.func, *core.args, **dict(
                    core.keywords, selective_scan_backend="torch", scan_force_torch=True))
        return official
    return VSSM(**common, ssm_d_state=d_state, ssm_ratio=ratio, ssm_conv_bias=True, forward_type="v0",
                mlp_ratio=0.0, norm_layer="ln", downsample_version="v1", patchembed_version="v1")


@contextlib.contextmanager
def _cpu_cuda_device_context():
    """The official cross-scan enters ``torch.cuda.device(x.device)`` even on its PyTorch path: no-op on CPU."""
    original = torch.cuda.device

    def device(d):
        return contextlib.nullcontext() if torch.device(d).type == "cpu" else original(d)

    torch.cuda.device = device
    try:
        yield
    finally:
        torch.cuda.device = original


_OFFICIAL_BUILDERS = {"vssm.models.vmamba": _official_vmamba}


def verify(name: str, model, official_sd: Mapping, official_path: str | None, size: int = 224) -> str:
    """Compare ours and the official model on one input; returns a one-line verdict (raises on mismatch)."""
    builder = _OFFICIAL_BUILDERS.get(model_module(name))
    if builder is None:
        return f"--verify skipped: no official builder for {model_module(name)} (only VMamba has one)"
    if not official_path:
        return "--verify skipped: pass --official-path to a checkout of the official repository"
    try:
        official = builder(official_path, model, name)
        official.load_state_dict(dict(official_sd), strict=True)
    except Exception as err:  # ImportError, missing compiled kernels, argument drift of the official code
        return f"--verify skipped: the official code could not be built from {official_path} " \
               f"({type(err).__name__}: {err})"
    x = torch.randn(1, model.in_chans if hasattr(model, "in_chans") else 3, size, size)
    model.eval(), official.eval()
    with torch.no_grad(), _cpu_cuda_device_context():
        try:
            want = official(x)
        except Exception as err:
            return f"--verify skipped: the official forward failed ({type(err).__name__}: {err})"
        got = model(x)
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    if diff > 1e-3 * max(scale, 1.0):
        raise ConversionError(f"--verify: outputs differ, max |ours - official| = {diff:.3g} (scale {scale:.3g})")
    return f"--verify: max |ours - official| = {diff:.3g} on a {size}x{size} input (scale {scale:.3g})"


# ---------------------------------------------------------------------------------------------------------

def finish(state: dict, report: Report, model, dst: str, quiet: bool = False, wrap_mm: bool = False) -> None:
    if not quiet:
        print("\n".join(report.lines()))
    print(report.summary())
    problems = report.problems()
    if problems:
        raise ConversionError(f"{len(problems)} unexplained keys, nothing written: {problems[:10]}")
    model.load_state_dict(state, strict=not report.missing)
    torch.save(dict(state_dict=state, meta={}) if wrap_mm else state, dst)
    print(f"wrote {dst} ({sum(v.numel() for v in state.values()):,} numbers); it loads "
          f"{'strictly' if not report.missing else 'with the missing keys above left at initialisation'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("model", help="a registered timm model (classification families, ConvS5)")
    m.add_argument("--model", required=True, help="registered name, e.g. vmamba_tiny (see vssm.list_models())")
    m.add_argument("--num-classes", type=int, default=None, help="classifier size (0 drops the classifier)")
    m.add_argument("--verify", action="store_true", help="compare with the official model on one input")
    m.add_argument("--official-path", default=None, help="checkout of the official repository (for --verify)")
    m.add_argument("--verify-size", type=int, default=224)
    mm = sub.add_parser("mm", help="an MMDetection / MMSegmentation checkpoint")
    mm.add_argument("--config", required=True, help="our mmdet / mmseg config the checkpoint is for")
    med = sub.add_parser("medical", help="VM-UNet / SegMamba weights")
    med.add_argument("--network", required=True, choices=_MEDICAL)
    med.add_argument("--kwargs", default="{}", help='network arguments as JSON, e.g. \'{"in_channels": 4}\'')
    det = sub.add_parser("detect", help="say which family / model a checkpoint looks like")
    for q in (m, mm, med, det):
        q.add_argument("src")
        q.add_argument("--trust-checkpoint", action="store_true",
                       help="allow pickled Python objects in the source file (only for files you trust)")
    for q in (m, mm, med):
        q.add_argument("dst")
        q.add_argument("--quiet", action="store_true", help="print the summary only")
    a = p.parse_args(argv)
    try:
        sd, entry = unwrap(load_checkpoint(a.src, a.trust_checkpoint))
        print(f"{a.src}: {len(sd)} tensors{f' (entry {entry!r})' if entry else ''}")
        if a.command == "detect":
            print(describe(sd))
            return 0
        if a.command == "model":
            state, report, model = convert_model(a.model, sd, a.num_classes)
            finish(state, report, model, a.dst, a.quiet)
            if a.verify:
                print(verify(a.model, model, sd, a.official_path, a.verify_size))
        elif a.command == "mm":
            state, report, model = convert_mm(a.config, sd)
            finish(state, report, model, a.dst, a.quiet, wrap_mm=True)
        else:
            state, report, model = convert_medical(a.network, sd, json.loads(a.kwargs))
            finish(state, report, model, a.dst, a.quiet)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
