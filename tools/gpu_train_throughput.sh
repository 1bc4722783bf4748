#!/usr/bin/env bash
# Training throughput of vmamba_tiny with the full recipe (RandAugment, mixup/cutmix, random erasing, EMA,
# fp16 autocast, grad clip 5) at 128 images per GPU, on 1 GPU and on 2 GPUs (torchrun, NCCL), on a generated
# ImageFolder (224px JPEGs) so no ImageNet is needed. Prints images/s, the 2-GPU speed-up and the peak memory
# per GPU, read from each run's epochs.csv (the last epoch, so Triton compilation and warm-up are excluded).
# The loss column of steps.csv shows the loss falling over the few hundred steps.
#
#   bash tools/gpu_train_throughput.sh [OUT_DIR]      (needs 2 CUDA GPUs for the second run)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/gpu_train_throughput}
PY=${PYTHON:-python}
MODEL=${MODEL:-vmamba_tiny}
EPOCHS=${EPOCHS:-3}
WORKERS=${WORKERS:-7}   # data processes per GPU (16 cores, 2 GPUs)
mkdir -p "$OUT"

# 100 classes x 96 images = 9,600 training images: 75 steps per epoch on 1 GPU, 37 on 2
[ -d "$OUT/data/train" ] || $PY -c "
from vssm.train.synthetic import write_synthetic_image_folder as w
w('$OUT/data', classes=100, per_class=96, val_per_class=4, size=256, ext='jpg')"

common=(-c "configs/classification/vmamba/$MODEL.yaml" --data-dir "$OUT/data" --epochs "$EPOCHS"
        --warmup-epochs 1 --batch-size 128 --workers "$WORKERS" --log-interval 10 --no-auto-resume)
for n in 1 2; do
  rm -rf "$OUT/gpus$n"
  $PY -m torch.distributed.run --standalone --nproc_per_node=$n tools/train_classification.py "${common[@]}" \
      --output "$OUT/gpus$n" 2>&1 | tee "$OUT/gpus$n.log"
done

$PY - "$OUT" <<'PYEOF'
import csv, sys, datetime, torch
out = sys.argv[1]
last = {n: list(csv.DictReader(open(f"{out}/gpus{n}/epochs.csv")))[-1] for n in (1, 2)}
steps = list(csv.DictReader(open(f"{out}/gpus1/steps.csv")))
ips = {n: float(last[n]["images_per_s"]) for n in (1, 2)}
print(f"date {datetime.date.today()}  device {torch.cuda.get_device_name(0)}")
for n in (1, 2):
    print(f"{n} GPU(s): {ips[n]:.0f} images/s, peak memory {float(last[n]['max_mem_gb']):.1f} GiB per GPU")
print(f"2-GPU speed-up: {ips[2] / ips[1]:.2f}x (goal >= 1.8x)")
print(f"1-GPU loss: step {steps[0]['step']} {float(steps[0]['loss']):.3f} -> step {steps[-1]['step']} "
      f"{float(steps[-1]['loss']):.3f}")
PYEOF
