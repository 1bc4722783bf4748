#!/usr/bin/env bash
# Second device call for the seq kernels (backward with its loads issued one step ahead): correctness with both
# seq kernels forced (every check, race check included), the sweep at N = 16, Vim-T throughput.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels2.sh", carry [".cache/wheels"], timeout_s 240
. tools/gpu_setup.sh seq2
VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq timeout 90 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/seq2_check.log"
timeout 60 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 \
    --config "VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq" --config "VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=tile3d" 2>&1 \
    | tee "$OUT/seq2_sweep.log"
timeout 60 python3 tools/benchmark.py vim_tiny_patch16_224 --gpu --json "$OUT/seq2_vim.json" 2>&1 | grep -v Warn \
    | tee "$OUT/seq2_vim.log"
