"""Train a ConvS5 (or ConvLSTM) frame predictor on moving digits, then score step-mode generation.

    python tools/train_convs5.py -c configs/convs5/moving_digits_tiny.yaml --out runs/convs5_tiny
    python tools/train_convs5.py -c configs/convs5/moving_digits_tiny.yaml --out runs/convs5_tiny --resume

Writes into --out: checkpoint.pt (model, optimizer, step, recipe; every save_interval steps and at the
end), metrics.json (held-out MSE of generated frames vs the copy-last-frame and empty-frame baselines) and
strip.png (a held-out clip: true frames on top, context + generated frames below).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import timm
import torch
from torch.utils.data import DataLoader

import vssm  # noqa: F401  (registers the models)
from vssm.data import MovingDigits
from vssm.video.training import evaluate_generation, fit, load_recipe, save_strip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="recipe YAML (configs/convs5/*.yaml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--seq-len", type=int, help="override data.seq_len")
    p.add_argument("--lr", type=float, help="override train.lr")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=0, help="data loader workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def build(recipe: dict, args):
    data, train = recipe["data"], recipe["train"]
    for key, value in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr)):
        if value is not None:
            train[key] = value
    if args.seq_len is not None:
        data["seq_len"] = args.seq_len
    common = dict(image_size=data["image_size"], digit_size=data["digit_size"], num_digits=data["num_digits"],
                  step_length=data.get("step_length", 0.15))
    train_set = MovingDigits("train", data["train_clips"], data["seq_len"], seed=args.seed, **common)
    test_set = MovingDigits("test", data["test_clips"], data.get("eval_seq_len", data["seq_len"]), **common)
    model = timm.create_model(recipe["model"], **recipe.get("model_kwargs", {}))
    return model, train_set, test_set


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe = load_recipe(args.config)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    model, train_set, test_set = build(recipe, args)
    train = recipe["train"]
    if train["steps"] < 1 or train["batch_size"] < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {train['steps']} and {train['batch_size']}")
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    model.to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"])
    start = 0
    if args.resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = ckpt["step"]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{recipe['model']}: {n_params:,} parameters; {len(train_set)} training clips of {train_set.seq_len} "
          f"frames at {train_set.image_size}px; steps {start}..{train['steps']}", flush=True)
    loader = DataLoader(train_set, batch_size=train["batch_size"], shuffle=True, num_workers=args.workers,
                        drop_last=True, generator=torch.Generator().manual_seed(args.seed))

    def save(step: int) -> None:   # written to a temporary name first, so a killed run leaves the last good one
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "recipe": recipe}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    def on_step(step: int, values: dict) -> None:
        if step % train.get("save_interval", 1000) == 0:
            save(step)

    began = time.time()
    if start < train["steps"]:
        _, losses = fit(model, loader, train["steps"], lr=train["lr"], weight_decay=train["weight_decay"],
                        warmup=train.get("warmup", 0), clip_grad=train.get("clip_grad"), device=args.device,
                        optimizer=optimizer, start_step=start, on_step=on_step,
                        progress=not args.no_progress)
        save(train["steps"])
    else:
        losses = []
    train_seconds = time.time() - began
    clips = torch.stack([test_set[i] for i in range(len(test_set))])
    scores = evaluate_generation(model, clips, recipe["data"]["num_context"], device=args.device)
    save_strip(os.path.join(args.out, "strip.png"), clips[0], scores.pop("generated")[0],
               recipe["data"]["num_context"])
    metrics = dict(scores, model=recipe["model"], steps=train["steps"], train_seconds=round(train_seconds, 1),
                   final_loss=losses[-1] if losses else None, num_context=recipe["data"]["num_context"],
                   eval_frames=test_set.seq_len)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
