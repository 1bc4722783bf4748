#!/usr/bin/env bash
# Device call: the tiled backward at N = 1 (VMamba-T / MSVMamba), its channel block and warps
# (VSSM_SCAN_BWD_TILE=D,warps; BLOCK_L stays the forward's 16) and a register cap, at every vmamba_t stage:
# the default 16 x 32 tile over 4 warps takes 142 registers (3 programs per SM: the 768 programs at 56x56 need
# two waves); smaller channel blocks or fewer warps change registers and waves (tools/kernel_report.py).
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels13.sh", carry [".cache/wheels"]
. tools/gpu_setup.sh r8
timeout 420 python3 tools/sweep_scan_kernels.py --stages 56 28 14 7 --N 1 --config "VSSM_SCAN_BC_VECTOR=1" \
    --config "VSSM_SCAN_BWD_TILE=16,4" --config "VSSM_SCAN_BWD_TILE=8,1" --config "VSSM_SCAN_BWD_TILE=16,2" \
    --config "VSSM_SCAN_BWD_TILE=32,8" --config "VSSM_SCAN_BWD_TILE=8,2" --config "VSSM_SCAN_BWD_MAXNREG=128" 2>&1 | tee "$OUT/r8_sweep.log"
