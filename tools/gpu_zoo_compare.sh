#!/usr/bin/env bash
# On the GPU machine, one call: kernel checks at model sizes, the zoo's GPU columns for the image models, the
# official VMamba-T (its CUDA scan, built in the background meanwhile) under the same protocol, our
# vmamba_tiny under torch.compile, then the scan benchmark table. Results (at most 8 files) go to $OUT.
set -o pipefail
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1
OFF=/tmp/official_out; mkdir -p $OFF
python3 -m pip install -q --no-deps .cache/wheels/*.whl 2>&1 | tail -1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } | tee "$OUT/device.txt"
OUT=$OFF bash tools/official/gpu_official.sh build > /tmp/official_build_driver.log 2>&1 &
build_pid=$!
timeout 150 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/check.log" | grep -v "^ok "
MODELS=${MODELS:-"vmamba_tiny vmamba_small vmamba_base vim_tiny_patch16_224 vim_small_patch16_224 msvmamba_tiny efficient_vmamba_base"}
timeout ${ZOO_TIMEOUT:-300} python3 tools/benchmark.py $MODELS --gpu --iters 10 --json "$OUT/gpu_zoo.json" 2>&1 | tee "$OUT/zoo.log"
wait $build_pid; echo "official build rc=$?"
OUT=$OFF ITERS=10 BENCH_TIMEOUT=100 bash tools/official/gpu_official.sh bench 2>&1 | grep -E "fp32:|bf16:|rc=|same"
cp $OFF/official_vmamba_tiny.json "$OUT/" 2>/dev/null
timeout ${COMPILE_TIMEOUT:-150} python3 tools/benchmark.py vmamba_tiny --gpu --compile --iters 10 --json "$OUT/compiled.json" 2>&1 | tail -2
timeout ${BENCH_TIMEOUT:-90} python3 tools/benchmark_scan.py --quick --no-reference --out "$OUT/bench_scan.md" 2>&1 | tail -14
