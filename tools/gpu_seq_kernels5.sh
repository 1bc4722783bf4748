#!/usr/bin/env bash
# Device call for the seq backward with two lanes per channel (VSSM_SCAN_BWD_SPLIT=2): every kernel check with it
# forced, the N = 16 sweep against one lane per channel (with its register cap rule), Vim-T training with it.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels5.sh", carry [".cache/wheels"], timeout_s 480
. tools/gpu_setup.sh seq5
VSSM_SCAN_BWD_KERNEL=seq VSSM_SCAN_BWD_SPLIT=2 timeout 110 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/seq5_check.log"
timeout 150 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 \
    --config "VSSM_SCAN_BWD_SPLIT=1" --config "VSSM_SCAN_BWD_SPLIT=2" \
    --config "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=168" \
    --config "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=128" 2>&1 | tee "$OUT/seq5_sweep.log"
for cfg in "VSSM_SCAN_BWD_SPLIT=1" "VSSM_SCAN_BWD_SPLIT=2 VSSM_SCAN_BWD_MAXNREG=168"; do
    echo "== $cfg" | tee -a "$OUT/seq5_models.log"
    env $cfg timeout 80 python3 tools/benchmark.py vim_tiny_patch16_224 --gpu --windows 2 2>&1 | grep -v Warn \
        | tee -a "$OUT/seq5_models.log"
done
