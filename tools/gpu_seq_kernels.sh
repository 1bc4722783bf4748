#!/usr/bin/env bash
# One device call for the in-thread ("seq") scan kernels: correctness at model sizes (tools/gpu_check_kernels.py
# with both seq kernels forced, race check included), a sweep against the tiled kernels at the 56x56 and Vim
# stages, and Vim-T / EfficientVMamba-B training and inference throughput with the seq kernels.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels.sh", carry [".cache/wheels"], timeout_s 480
. tools/gpu_setup.sh seq
VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq timeout ${CHECK_TIMEOUT:-150} python3 tools/gpu_check_kernels.py 2>&1 \
    | tee "$OUT/seq_check.log"
timeout ${SWEEP_TIMEOUT:-160} python3 tools/sweep_scan_kernels.py --stages 56 vim197 vim730 \
    --config "VSSM_SCAN_FWD_KERNEL=tile3d" --config "VSSM_SCAN_FWD_KERNEL=seq" \
    --config "VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq" --config "VSSM_SCAN_BWD_KERNEL=seq" 2>&1 \
    | tee "$OUT/seq_sweep.log"
VSSM_SCAN_FWD_KERNEL=seq VSSM_SCAN_BWD_KERNEL=seq timeout ${MODEL_TIMEOUT:-130} python3 tools/benchmark.py \
    vim_tiny_patch16_224 efficient_vmamba_base --gpu --windows 2 --json "$OUT/seq_models.json" 2>&1 \
    | grep -v Warn | tee "$OUT/seq_models.log"
