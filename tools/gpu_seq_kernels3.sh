#!/usr/bin/env bash
# Device call for the seq backward's lane reduce-scatter (dB / dC): every kernel check with the default kernel
# choice, then the seq kernels forced; a sweep at N = 16 over the state spacing (BLOCK_L) and a register cap;
# an Nsight Compute profile of the seq backward at Vim's shape; Vim-T and EfficientVMamba-B throughput.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels3.sh", carry [".cache/wheels"], timeout_s 600
. tools/gpu_setup.sh seq3
{ echo "== default kernel choice"; timeout 110 python3 tools/gpu_check_kernels.py
  echo "== seq kernels forced"; VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq timeout 110 python3 tools/gpu_check_kernels.py
} 2>&1 | tee "$OUT/seq3_check.log"
S="VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq"
timeout 170 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 \
    --config "$S" --config "$S VSSM_SCAN_TILE=8,32,1" --config "$S VSSM_SCAN_TILE=32,32,1" \
    --config "$S VSSM_SCAN_BWD_MAXNREG=224" --config "$S VSSM_SCAN_BWD_MAXNREG=192" \
    --config "$S VSSM_SCAN_BWD_MAXNREG=168" 2>&1 | tee "$OUT/seq3_sweep.log"
if command -v ncu >/dev/null; then
    timeout 100 ncu --kernel-name regex:routed_scan_bwd_seq --launch-skip 2 --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section SchedulerStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
        python3 tools/sweep_scan_kernels.py --stages vim197 --N 16 --config "$S" 2>&1 | tee "$OUT/seq3_ncu.log" | tail -5
fi
timeout 100 python3 tools/benchmark.py vim_tiny_patch16_224 efficient_vmamba_base --gpu --json "$OUT/seq3_models.json" \
    2>&1 | grep -v Warn | tee "$OUT/seq3_models.log"
