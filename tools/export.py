"""Export a registered model to ONNX (and check it in onnxruntime) or to a torch.export program.

    python tools/export.py vmamba_tiny --size 224 --onnx vmamba_tiny.onnx
    python tools/export.py vim_tiny_patch16_224 --program vim.pt2 --checkpoint weights.pth
"""

from __future__ import annotations

import argparse

import timm
import torch

import vssm  # noqa: F401  (registers our models)
from vssm.export import check_onnx, export_onnx, export_program


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=224, help="input side; the exported graph is fixed to it")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="timm-loadable weights (official ones are converted)")
    parser.add_argument("--onnx", default=None, help="write ONNX here and compare it with PyTorch")
    parser.add_argument("--program", default=None, help="write a torch.export program (.pt2) here")
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args()
    if not (args.onnx or args.program):
        parser.error("give --onnx and/or --program")
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    if args.checkpoint:
        kwargs["pretrained"] = True
        kwargs["pretrained_cfg_overlay"] = dict(file=args.checkpoint)
    model = timm.create_model(args.model, **kwargs).eval()
    example = torch.randn(args.batch, 3, args.size, args.size)
    if args.program:
        torch.export.save(export_program(model, example), args.program)
        print(f"wrote {args.program}")
    if args.onnx:
        export_onnx(model, example, args.onnx, opset=args.opset)
        print(f"wrote {args.onnx}; onnxruntime vs PyTorch max abs diff {check_onnx(model, args.onnx, example):.2e}")


if __name__ == "__main__":
    main()
