#!/usr/bin/env bash
# Device call: the whole kernel benchmark (tools/benchmark_scan.py: every vmamba_t stage at N = 1 and 16, Vim
# L197 / L730; materialised and fused, channels-first maps at 56x56; forwards timed from CUDA graphs) with the
# kernels of the fifth round, for the table in model_zoo.md and notes/kernels.md.
#   device run: command "OUT=$OUT bash tools/gpu_seq_kernels12.sh", carry [".cache/wheels"]
. tools/gpu_setup.sh r7
timeout 540 python3 tools/benchmark_scan.py --no-reference --out "$OUT/bench_scan.md" 2>&1 | tee "$OUT/bench_scan.log"
