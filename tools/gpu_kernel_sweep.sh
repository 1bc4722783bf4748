#!/usr/bin/env bash
# On the GPU machine, one call: install the project, check the kernels at model sizes (and the race check),
# sweep forward kernel variants / tiles, then profile one config with ncu. Logs go to $OUT (or ./gpu_logs).
set -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; } | tee "$OUT/device.txt"
timeout ${CHECK_TIMEOUT:-200} python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/check.log"
cd tools
FWD_CONFIGS=${FWD_CONFIGS:-"VSSM_SCAN_FWD_KERNEL=tile3d|VSSM_SCAN_TILE=16,32,4|VSSM_SCAN_TILE=32,32,4|VSSM_SCAN_TILE=16,32,2|VSSM_SCAN_TILE=32,32,8|VSSM_SCAN_TILE=8,32,1|VSSM_SCAN_TILE=16,16,1|VSSM_SCAN_TILE=64,32,8"}
args=(); IFS='|' read -ra cfgs <<< "$FWD_CONFIGS"; for c in "${cfgs[@]}"; do args+=(--config "$c"); done
timeout ${SWEEP_TIMEOUT:-200} python3 sweep_scan_kernels.py --stages 56 vim197 --fwd-only "${args[@]}" 2>&1 | tee "$OUT/sweep_fwd.log"
FB_CONFIGS=${FB_CONFIGS:-"VSSM_SCAN_FWD_KERNEL=tile3d|VSSM_SCAN_TILE=16,32,4|VSSM_SCAN_TILE=32,32,4"}
args=(); IFS='|' read -ra cfgs <<< "$FB_CONFIGS"; for c in "${cfgs[@]}"; do args+=(--config "$c"); done
timeout ${SWEEP_FB_TIMEOUT:-150} python3 sweep_scan_kernels.py --stages 56 vim197 "${args[@]}" 2>&1 | tee "$OUT/sweep_fb.log"
cd ..
if command -v ncu >/dev/null && [ -n "${NCU_CONFIG:-VSSM_SCAN_TILE=16,32,4}" ]; then
    cd tools
    env ${NCU_CONFIG:-VSSM_SCAN_TILE=16,32,4} timeout 120 ncu --kernel-name regex:routed_scan_fwd --launch-skip 3 --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section MemoryWorkloadAnalysis python3 sweep_scan_kernels.py --stages 56 --N 1 --fwd-only \
        --config "${NCU_CONFIG:-VSSM_SCAN_TILE=16,32,4}" 2>&1 | tee "$OUT/ncu.log" | tail -120
    cd ..
fi
