#!/usr/bin/env bash
# Device call after the seq backward's register cap rule (launch.seq_bwd_register_cap) and the single-return
# lane helpers (Triton 3.6 rejected an early return): every kernel check with the default kernel choice and with
# the seq kernels forced; the N = 16 sweep with the cap rule against no cap; Vim-T / EfficientVMamba-B throughput.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels4.sh", carry [".cache/wheels"], timeout_s 420
. tools/gpu_setup.sh seq4
{ echo "== default kernel choice"; timeout 110 python3 tools/gpu_check_kernels.py
  echo "== seq kernels forced"; VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq timeout 110 python3 tools/gpu_check_kernels.py
} 2>&1 | tee "$OUT/seq4_check.log"
timeout 100 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --N 16 \
    --config "VSSM_SCAN_BWD_MAXNREG=0" --config "VSSM_SCAN_FWD_KERNEL=seq" \
    --config "VSSM_SCAN_TILE=8,32,1" 2>&1 | tee "$OUT/seq4_sweep.log"
timeout 120 python3 tools/benchmark.py vim_tiny_patch16_224 efficient_vmamba_base --gpu --windows 2 \
    --json "$OUT/seq4_models.json" 2>&1 | grep -v Warn | tee "$OUT/seq4_models.log"
