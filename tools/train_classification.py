#!/usr/bin/env python
"""Train an image classifier (vssm or any timm model) on an ImageFolder dataset.

One process:
    python tools/train_classification.py -c configs/classification/vmamba/vmamba_tiny.yaml --data-dir /data/imagenet
N processes / GPUs (DistributedDataParallel; NCCL on GPUs, gloo on CPU):
    torchrun --nproc_per_node=N tools/train_classification.py -c CONFIG --data-dir DIR --output runs/x
The options (``--help``) can also be set in the YAML config; the command line wins. Re-running the same command
continues from OUTPUT/last.pth.
"""

import sys

from vssm.train import fit, parse_args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        fit(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
