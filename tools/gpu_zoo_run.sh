#!/usr/bin/env bash
# On the GPU machine: the zoo's GPU columns for the image models, vmamba_tiny under torch.compile, and a
# profile of vmamba_tiny. Results go to $OUT.
set -o pipefail
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps .cache/wheels/*.whl 2>&1 | tail -1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } | tee "$OUT/device.txt"
MODELS=${MODELS:-"vmamba_tiny vmamba_small vmamba_base vim_tiny_patch16_224 vim_small_patch16_224 msvmamba_tiny efficient_vmamba_base"}
timeout ${ZOO_TIMEOUT:-300} python3 tools/benchmark.py $MODELS --gpu --iters 10 --json "$OUT/gpu_zoo.json" 2>&1 | tee "$OUT/zoo.log" | cut -c1-400
timeout ${COMPILE_TIMEOUT:-150} python3 tools/benchmark.py vmamba_tiny --gpu --compile --iters 10 --json "$OUT/compiled.json" 2>&1 | tail -2
timeout ${PROFILE_TIMEOUT:-60} python3 tools/profile_model.py vmamba_tiny --rows 20 > "$OUT/profile.log" 2>&1
