#!/usr/bin/env bash
# Device call: every kernel check, now with B / C inside projection rows (the in-thread kernels' vector loads on
# the GPU: Vim's bf16 training grid and its race check, fp32, a channels-last cross2d); then the forward
# timed from a CUDA graph (then a --graph option of the sweep; benchmark_scan.time_it now times every
# forward so), for the new kernels and the previous commit's (.cache/baseline).
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels10.sh", carry [".cache/wheels", ".cache/baseline"]
. tools/gpu_setup.sh r5c
timeout 200 python3 tools/gpu_check_kernels.py 2>&1 | tee "$OUT/r5c_check.log"
mkdir -p /tmp/new && cp kernels/triton/{common,fwd_seq,bwd_seq,launch}.py /tmp/new/
timeout 90 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --config "VSSM_SCAN_BC_VECTOR=1" \
    2>&1 | sed 's/^/new      /' | tee -a "$OUT/r5c_graph.log"
cp .cache/baseline/*.py kernels/triton/
timeout 90 python3 tools/sweep_scan_kernels.py --stages vim197 vim730 56 --config "VSSM_SCAN_BC_VECTOR=1" \
    2>&1 | sed 's/^/previous /' | tee -a "$OUT/r5c_graph.log"
cp /tmp/new/*.py kernels/triton/
