#!/usr/bin/env bash
# On the GPU machine, one call: build the official VMamba CUDA scan in the background (CPU only) while the GPU
# profiles our vmamba_tiny and times the medical networks; then, with the GPU otherwise idle, the official
# VMamba-T and our vmamba_tiny back to back under the same protocol. Logs and JSON go to $OUT.
set -o pipefail
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"; export OUT PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps .cache/wheels/*.whl 2>&1 | tail -1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } | tee "$OUT/device.txt"
bash tools/official/gpu_official.sh build > /tmp/official_build_driver.log 2>&1 &
build_pid=$!
timeout 120 python3 tools/profile_model.py vmamba_tiny --rows 30 2>&1 | tee "$OUT/profile_vmamba_tiny.log" | tail -75
timeout 150 python3 tools/benchmark_medical.py --json "$OUT/medical_gpu.json" 2>&1 | tee /tmp/medical.log
wait $build_pid; echo "official build rc=$?"; tail -5 /tmp/official_build_driver.log
ITERS=10 bash tools/official/gpu_official.sh bench 2>&1 | tail -30
timeout 150 python3 tools/benchmark.py vmamba_tiny --gpu --iters 10 --json "$OUT/ours_vmamba_tiny.json" 2>&1 | tail -3
