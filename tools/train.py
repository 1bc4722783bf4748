"""Train an MMDetection or MMSegmentation config (the toolkit comes from the config's default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch   (GPU: NCCL; CPU: gloo)
"""

import argparse

from mmengine.runner import Runner

from vssm.mm.launch import DictAction, enable_amp, load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a detector or segmentor")
    p.add_argument("config")
    p.add_argument("--work-dir")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from CKPT, or from the latest checkpoint in the work dir when no CKPT is given")
    p.add_argument("--amp", action="store_true", help="automatic mixed precision")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries: key=value")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)  # accepted for torch.distributed.launch
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        enable_amp(cfg)
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    main()
