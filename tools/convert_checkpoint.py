"""Convert an official classification checkpoint into a state dict of one of our timm models.

    python tools/convert_checkpoint.py --model vmamba_tiny OFFICIAL.pth OUT.pth [--trust-checkpoint]

The model's family module supplies ``checkpoint_filter_fn`` (the same one ``timm.create_model(name,
pretrained=True, pretrained_cfg_overlay=dict(file=OFFICIAL.pth))`` uses); it raises with a list if any key
cannot be placed. The result loads strictly: ``model.load_state_dict(torch.load(OUT.pth))``.
"""

import argparse
import sys

import torch
import timm

import vssm  # noqa: F401  (registers the models)


def filter_fn_for(model):
    module = sys.modules[type(model).__module__]
    fn = getattr(module, "checkpoint_filter_fn", None)
    if fn is None:
        raise SystemExit(f"{module.__name__} has no checkpoint_filter_fn")
    return fn


def load_source(path: str, trust: bool):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # released files often pickle their training config as well
        if not trust:
            raise SystemExit(f"{path} holds more than tensors ({type(err).__name__}); rerun with "
                             "--trust-checkpoint if you trust the file") from err
        return torch.load(path, map_location="cpu", weights_only=False)


def convert(model_name: str, src: str, dst: str, trust_checkpoint: bool = False) -> dict:
    model = timm.create_model(model_name, pretrained=False)
    state = filter_fn_for(model)(load_source(src, trust_checkpoint), model)
    model.load_state_dict(state, strict=True)
    torch.save(model.state_dict(), dst)
    return dict(tensors=len(state), params=sum(p.numel() for p in model.parameters()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered model name, e.g. vmamba_tiny")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow pickled Python objects in the source file (only for files you trust)")
    a = p.parse_args(argv)
    r = convert(a.model, a.src, a.dst, a.trust_checkpoint)
    print(f"{a.model}: {r['tensors']} tensors, {r['params']:,} parameters; wrote {a.dst} (loads strictly)")


if __name__ == "__main__":
    main()
