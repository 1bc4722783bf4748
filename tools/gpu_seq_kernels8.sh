#!/usr/bin/env bash
# Device call for the fifth round (vector loads of B / C in the in-thread kernels, the fp32 softplus by an atanh
# series): every kernel check with the new code, then the kernel sweep (Vim L197 / L730, 56x56 N = 1 and 16)
# for the new code, the kernels of the previous commit, and the new code again (A / B / A: the spread between
# runs shows). The previous kernels travel in the git-ignored .cache/baseline (git show HEAD~:...).
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels8.sh", carry [".cache/wheels", ".cache/baseline"]
. tools/gpu_setup.sh r5
timeout 150 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/r5_check.log"
mkdir -p /tmp/new && cp kernels/triton/{common,fwd_seq,bwd_seq,launch}.py /tmp/new/
sweep() {
    echo "== $1" | tee -a "$OUT/r5_sweep.log"
    timeout 100 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --config "$2" 2>&1 | tee -a "$OUT/r5_sweep.log"
}
sweep "new" "VSSM_SCAN_BC_VECTOR=1"
sweep "new, B / C loaded state by state" "VSSM_SCAN_BC_VECTOR=0"
cp .cache/baseline/*.py kernels/triton/
sweep "previous kernels" "VSSM_SCAN_BC_VECTOR=1"
cp /tmp/new/*.py kernels/triton/
sweep "new again" "VSSM_SCAN_BC_VECTOR=1"
