"""Run the trainer (under torchrun or alone) and save this rank's final weights as OUTPUT/weights_rank<R>.pt."""

import os
import sys

import torch

from vssm.train import fit, parse_args

if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    result = fit(args)
    rank = int(os.environ.get("RANK", "0"))
    torch.save(result.model.state_dict(), os.path.join(args.output, f"weights_rank{rank}.pt"))
