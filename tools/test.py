"""Evaluate a checkpoint with an MMDetection or MMSegmentation config.

    python tools/test.py CONFIG CHECKPOINT|none [--work-dir DIR] [--metrics-out FILE.json] [--cfg-options k=v ...]
"""

import argparse
import json

from mmengine.runner import Runner

from vssm.mm.launch import DictAction, load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Test a detector or segmentor checkpoint")
    p.add_argument("config")
    p.add_argument("checkpoint", help="checkpoint to evaluate, or 'none' for the model's initial weights")
    p.add_argument("--work-dir")
    p.add_argument("--metrics-out", help="write the metrics as JSON to this file")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries: key=value")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = None if args.checkpoint == "none" else args.checkpoint
    metrics = Runner.from_cfg(cfg).test()
    if args.metrics_out:
        with open(args.metrics_out, "w") as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
    return metrics


if __name__ == "__main__":
    main()
