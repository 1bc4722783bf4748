"""Convert an official classification checkpoint into a state dict of one of our timm models.

    python tools/convert_checkpoint.py --model vmamba_tiny OFFICIAL.pth OUT.pth [--trust-checkpoint]

Kept for existing scripts: this is ``python tools/convert.py model ...`` (the one converter for every family,
with the per-key report and ``--verify``); see that tool. The result loads strictly:
``model.load_state_dict(torch.load(OUT.pth))``.
"""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("vssm_convert_tool", Path(__file__).with_name("convert.py"))
_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tool)


def convert(model_name: str, src: str, dst: str, trust_checkpoint: bool = False) -> dict:
    """Convert ``src`` for ``model_name`` and save it to ``dst``; returns tensor and parameter counts."""
    sd, _ = _tool.unwrap(_tool.load_checkpoint(str(src), trust_checkpoint))
    state, report, model = _tool.convert_model(model_name, sd)
    _tool.finish(state, report, model, str(dst), quiet=True)
    return dict(tensors=len(state), params=sum(p.numel() for p in model.parameters()))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    status = _tool.main(["model", *argv])
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
