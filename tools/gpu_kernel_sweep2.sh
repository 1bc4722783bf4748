#!/usr/bin/env bash
# Second sweep: per state size, forward kernel variants and tiles, then forward+backward with backward tiles.
set -o pipefail
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
timeout 200 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/check.log"
cd tools
run() { local tag=$1; shift; timeout ${T:-120} python3 sweep_scan_kernels.py "$@" 2>&1 | tee -a "$OUT/sweep_$tag.log"; }
K3=VSSM_SCAN_FWD_KERNEL=tile3d
run n1 --stages 56 --N 1 --fwd-only --config "$K3" --config "$K3 VSSM_SCAN_TILE=32,32,4" --config "$K3 VSSM_SCAN_TILE=128,32,4" \
  --config "VSSM_SCAN_TILE=16,32,4" --config "VSSM_SCAN_TILE=32,32,4" --config "VSSM_SCAN_TILE=64,32,8" --config "VSSM_SCAN_TILE=32,32,2" --config "VSSM_SCAN_TILE=64,32,4"
run n16 --stages 56 vim197 --N 16 --fwd-only --config "$K3" --config "$K3 VSSM_SCAN_TILE=8,32,4" --config "$K3 VSSM_SCAN_TILE=16,32,4" \
  --config "$K3 VSSM_SCAN_TILE=32,16,4" --config "VSSM_SCAN_TILE=8,32,1" --config "VSSM_SCAN_TILE=16,32,4" --config "VSSM_SCAN_TILE=16,16,1"
T=200 run fb --stages 56 vim197 --config "$K3" --config "VSSM_SCAN_TILE=16,32,4" --config "VSSM_SCAN_TILE=16,32,4 VSSM_SCAN_BWD_TILE=16,4" \
  --config "VSSM_SCAN_TILE=32,32,4 VSSM_SCAN_BWD_TILE=32,4" --config "VSSM_SCAN_TILE=64,32,4 VSSM_SCAN_BWD_TILE=32,8"
