#!/usr/bin/env bash
# Device call for the fifth round, in the model: Vim-T throughput (tools/benchmark.py --gpu, batch 128) with the
# new kernels, the previous commit's (.cache/baseline), the new, the previous again (A / B / A / B: bf16 runs
# spread on this machine, so only a difference that holds in both pairs counts).
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels9.sh", carry [".cache/wheels", ".cache/baseline"]
. tools/gpu_setup.sh r5m
mkdir -p /tmp/new && cp kernels/triton/{common,fwd_seq,bwd_seq,launch}.py /tmp/new/
vim() {
    echo "== $1" | tee -a "$OUT/r5_vim.log"
    timeout 85 python3 tools/benchmark.py vim_tiny_patch16_224 --gpu --windows 2 2>&1 | grep -v Warn | tee -a "$OUT/r5_vim.log"
}
vim new
cp .cache/baseline/*.py kernels/triton/
vim previous
cp /tmp/new/*.py kernels/triton/
vim new
cp .cache/baseline/*.py kernels/triton/
vim previous
cp /tmp/new/*.py kernels/triton/
