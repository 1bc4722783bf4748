#!/usr/bin/env bash
# On the GPU machine: install the project (its torch pin is left alone), run the kernel checks at model sizes
# and the race check, then the benchmark. Logs go to $OUT (or ./gpu_logs). Usage: tools/gpu_check_kernels.sh [bench args]
set -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
date -u | tee -a "$OUT/device.txt"
timeout 300 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/check.log"
check_rc=$?
timeout ${BENCH_TIMEOUT:-240} python3 tools/benchmark_scan.py "$@" --out "$OUT/bench.md" 2>&1 | tee "$OUT/bench.log"
echo "check rc=$check_rc"
