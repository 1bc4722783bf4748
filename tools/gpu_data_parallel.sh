#!/usr/bin/env bash
# On a 2-GPU machine (device kind nvidia-h200-x2): 1 GPU vs 2 GPUs data-parallel (torchrun, NCCL).
#
#   PART=mm     (issue 8)  mm packages and the carried CUDA mmcv wheel (tools/gpu_mm.sh with SKIP_BENCH=1), then
#                          tools/benchmark_mm.py on 1 GPU and under `torchrun --nproc_per_node=2`: UperNet +
#                          VMamba-T 512x512 and Mask R-CNN + VMamba-T 1333x800, same batch per GPU; time per
#                          iteration and peak memory per GPU -> $OUT/bench_mm_1gpu.json, bench_mm_2gpu.json.
#   PART=train  (issue 11) tools/gpu_train_throughput.sh: vmamba_tiny with the full recipe, 128 images per GPU,
#                          1 and 2 GPUs -> $OUT/train_throughput.log and both runs' epochs.csv / steps.csv.
#
#   device run:  command "PART=mm OUT=$OUT bash tools/gpu_data_parallel.sh", carry [".cache/mm"], kind nvidia-h200-x2
#                command "PART=train OUT=$OUT bash tools/gpu_data_parallel.sh", carry [".cache/mm"]
set -o pipefail
OUT=${OUT:-gpu_logs}
PART=${PART:-mm}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SITE=/tmp/mmsite
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$OUT/gpus.txt"

if [ "$PART" = mm ]; then
    SKIP_BENCH=1 OUT="$OUT" bash tools/gpu_mm.sh || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    quiet() { grep --line-buffered -v -E "paramwise_options|UserWarning|warnings.warn|build_loss|^  warnings"; }
    ARGS=(--models upernet maskrcnn --dtypes ${DTYPES:-bf16 fp32} --iters "${ITERS:-10}" --warmup 3)
    echo "== 1 GPU" | tee -a "$OUT/gpu_mm.log"
    timeout 240 python3 tools/benchmark_mm.py --device cuda "${ARGS[@]}" --json "$OUT/bench_mm_1gpu.json" 2>&1 \
        | quiet | tee -a "$OUT/gpu_mm.log"
    echo "== 2 GPUs (torchrun, NCCL)" | tee -a "$OUT/gpu_mm.log"
    timeout 270 python3 -m torch.distributed.run --standalone --nproc_per_node=2 tools/benchmark_mm.py --device cuda \
        "${ARGS[@]}" --json "$OUT/bench_mm_2gpu.json" 2>&1 | quiet | tee -a "$OUT/gpu_mm.log"
elif [ "$PART" = train ]; then
    python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -3
    python3 -m pip install -q --no-index --no-deps .cache/mm/timm-*.whl 2>&1 | tail -3
    python3 -c "import timm, torch; print('timm', timm.__version__, 'torch', torch.__version__)"
    WORKERS=${WORKERS:-$(( $(nproc) / 2 - 2 ))} PYTHON=python3 timeout 560 \
        bash tools/gpu_train_throughput.sh /tmp/train_tp 2>&1 | grep --line-buffered -v -E "UserWarning|warnings.warn" \
        | tee "$OUT/train_throughput.log" | grep -v "^ *[0-9]*%|" | tail -40
    for n in 1 2; do
        cp /tmp/train_tp/gpus$n/epochs.csv "$OUT/epochs_gpus$n.csv" 2>/dev/null
        cp /tmp/train_tp/gpus$n/steps.csv "$OUT/steps_gpus$n.csv" 2>/dev/null
    done
else
    echo "gpu_data_parallel.sh: PART must be mm or train, not '$PART'"; exit 2
fi
