#!/usr/bin/env bash
# Device call: the tiled N <= 4 forward ("nloop") issuing the next tile's loads before this tile's arithmetic.
# Every kernel check, then the N = 1 stages (56x56 .. 7x7, and Vim's shapes for the unchanged kernels) with the
# new forward and the previous one (.cache/baseline2: fwd_nloop.py of the commit before), new again.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels11.sh", carry [".cache/wheels", ".cache/baseline2"]
. tools/gpu_setup.sh r6
timeout 200 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/r6_check.log"
cp kernels/triton/fwd_nloop.py /tmp/fwd_nloop_new.py
sweep() {
    timeout 100 python3 tools/sweep_scan_kernels.py --stages 56 28 14 7 --N 1 --config "VSSM_SCAN_BC_VECTOR=1" \
        2>&1 | sed "s/^/$1 /" | tee -a "$OUT/r6_sweep.log"
}
sweep "new     "
cp .cache/baseline2/fwd_nloop.py kernels/triton/
sweep "previous"
cp /tmp/fwd_nloop_new.py kernels/triton/fwd_nloop.py
sweep "new     "
