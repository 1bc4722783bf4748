#!/usr/bin/env bash
# Device call for the seq backward's layout rule (launch.seq_bwd_layout: two lanes per channel and a register cap
# where the grid needs two waves uncapped): every kernel check with the default choice, Vim's training grid
# included; the N = 16 sweep with the defaults; Vim-T throughput.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels6.sh", carry [".cache/wheels"], timeout_s 360
. tools/gpu_setup.sh seq6
timeout 150 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/seq6_check.log"
timeout 60 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 --config "VSSM_SCAN_FWD_KERNEL=seq" \
    2>&1 | tee "$OUT/seq6_sweep.log"
timeout 80 python3 tools/benchmark.py vim_tiny_patch16_224 --gpu --windows 2 --json "$OUT/seq6_vim.json" 2>&1 \
    | grep -v Warn | tee "$OUT/seq6_vim.log"
