#!/usr/bin/env bash
# Device call for a variant, reverted after this call, in which each lane of a two-lane channel loads only its
# own share of B / C (commit 'each lane loads only its share'): every kernel check with two lanes forced; the
# N = 16 sweep: defaults (launch.seq_bwd_layout), two lanes uncapped / capped at 168 / at 128.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels7.sh", carry [".cache/wheels"], timeout_s 300
. tools/gpu_setup.sh seq7
VSSM_SCAN_BWD_KERNEL=seq VSSM_SCAN_BWD_SPLIT=2 timeout 120 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/seq7_check.log"
timeout 120 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 --config "VSSM_SCAN_FWD_KERNEL=seq" \
    --config "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=0" --config "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=168" \
    --config "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=128" 2>&1 | tee "$OUT/seq7_sweep.log"
