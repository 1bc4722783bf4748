"""Run logs a user can plot: ``steps.csv`` (loss/lr every few updates), ``epochs.csv``, ``summary.json``.

Only the main process writes. On resume, rows of epochs that were not finished before the interruption are
dropped, so the log reads like one uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Iterable

STEP_FIELDS = ["epoch", "step", "lr", "loss"]
EPOCH_FIELDS = ["epoch", "step", "lr", "train_loss", "eval_loss", "eval_top1", "eval_top5",
                "ema_eval_loss", "ema_eval_top1", "ema_eval_top5", "images_per_s", "seconds", "max_mem_gb"]


class CsvLog:
    def __init__(self, path: str, fields: list[str], enabled: bool = True):
        self.path, self.fields, self.enabled = path, fields, enabled

    def keep_epochs_before(self, epoch: int) -> None:
        """Drop rows of epochs >= ``epoch`` (left by a run that was killed in the middle of one)."""
        if not self.enabled or not os.path.isfile(self.path):
            return
        rows = [r for r in read_csv(self.path) if int(r["epoch"]) < epoch]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        new = not os.path.isfile(self.path)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k)) for k in self.fields})


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.8g}"
    return "" if v is None else v


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _column(rows: Iterable[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]


def plot_curves(run_dir: str, png_path: str, title: str = "") -> str:
    """Loss (per logged step, per epoch) and evaluation accuracy (model, EMA) of a run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = read_csv(os.path.join(run_dir, "steps.csv")) if os.path.isfile(os.path.join(run_dir, "steps.csv")) else []
    epochs = read_csv(os.path.join(run_dir, "epochs.csv"))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if steps:
        ax_loss.plot(_column(steps, "step"), _column(steps, "loss"), lw=0.8, alpha=0.5, label="train (step)")
    ax_loss.plot(_column(epochs, "step"), _column(epochs, "train_loss"), "o-", label="train (epoch mean)")
    ax_loss.plot(_column(epochs, "step"), _column(epochs, "eval_loss"), "s-", label="test")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    epoch_no = [e + 1 for e in _column(epochs, "epoch")]
    ax_acc.plot(epoch_no, _column(epochs, "eval_top1"), "o-", label="model")
    ema = _column(epochs, "ema_eval_top1")
    if any(v == v for v in ema):  # any non-NaN
        ax_acc.plot(epoch_no, ema, "s--", label="EMA")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test top-1 accuracy (%)")
    ax_acc.set_ylim(0, 100)
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
