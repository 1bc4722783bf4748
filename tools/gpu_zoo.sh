#!/usr/bin/env bash
# On the GPU machine, one call: install the project (its torch pin left alone), measure the zoo models'
# throughput and memory (tools/benchmark.py --gpu) and ConvS5 vs ConvLSTM (tools/benchmark_convs5.py).
# Logs and JSON go to $OUT (or ./gpu_logs).  Usage: MODELS="vmamba_tiny vim_tiny_patch16_224" tools/gpu_zoo.sh
set -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
MODELS=${MODELS:-"vmamba_tiny vmamba_small vmamba_base vim_tiny_patch16_224 vim_small_patch16_224 msvmamba_tiny efficient_vmamba_base"}
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } | tee "$OUT/device.txt"
timeout ${ZOO_TIMEOUT:-360} python3 tools/benchmark.py $MODELS --gpu ${COMPILE:+--compile} --iters ${ITERS:-10} --json "$OUT/gpu_zoo.json" \
    2>&1 | tee "$OUT/zoo.log"
if [ "${CONVS5:-1}" = 1 ]; then
    timeout ${CONVS5_TIMEOUT:-150} python3 tools/benchmark_convs5.py --seq-len 300 --batch-size 8 --repeats 3 \
        --context 100 --gen-frames 50 2>&1 | tee "$OUT/convs5.log"
fi
