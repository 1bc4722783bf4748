"""Train and evaluate a segmentation network on the MNI152 template (clean or corrupted split).

    python tools/train_medical.py configs/medical/template_base.json configs/medical/vssmunet3d.json \
        --out runs/vssmunet3d --set data#setting=corrupted --set train#steps=150

Later config files replace earlier top-level keys; ``--set key#sub=value`` overrides one setting (JSON values).
Writes metrics.json, checkpoint.pt and overlay.png to --out; --resume continues from its checkpoint.
"""

from __future__ import annotations

import argparse
import json

import torch

from vssm.medical.engine import load_config, run


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="bundle-style JSON configs, merged left to right")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one setting, e.g. train#steps=50 (repeatable)")
    ap.add_argument("--out", default=None, help="output folder (metrics.json, checkpoint.pt, overlay.png)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = run(load_config(args.configs, args.overrides), args.out, resume=args.resume, device=args.device,
                  progress=not args.no_progress)
    summary = {k: v for k, v in metrics.items() if k != "losses"}
    print(json.dumps(summary, indent=1))
    return metrics


if __name__ == "__main__":
    main()
