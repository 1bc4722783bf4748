#!/usr/bin/env bash
# Device call: the official CUDA selective scans kernel against kernel beside ours. Builds VMamba's
# selective_scan_cuda_oflex and Vim's mamba_ssm 1.1.1 selective_scan_cuda at once (scratch copies of
# .cache/official, patched for CUDA 13; CPU only), then runs tools/official/bench_official_scan.py.
#   device run: command "OUT=$OUT bash tools/official/gpu_official_scan.sh", carry [".cache/wheels", ".cache/official"],
#   timeout_s 600
. tools/gpu_setup.sh official_scan
export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} PYTHON=python3
T0=$(date +%s)
( timeout 420 bash tools/official/build_vmamba_kernel.sh > /tmp/build_vmamba.log 2>&1; echo "vmamba build rc=$?" >> /tmp/build_vmamba.log ) &
( timeout 420 python3 tools/official/build_official_ext.py vim --module selective_scan_cuda > /tmp/build_vim.log 2>&1; echo "vim build rc=$?" >> /tmp/build_vim.log ) &
wait
echo "builds done after $(( $(date +%s) - T0 )) s" | tee "$OUT/official_scan_build.log"
tail -n 4 /tmp/build_vmamba.log /tmp/build_vim.log | tee -a "$OUT/official_scan_build.log"
V=$(grep -o "VMAMBA_BUILD_DIR=.*" /tmp/build_vmamba.log | tail -1 | cut -d= -f2)
M=$(grep -o "OFFICIAL_BUILD_DIR=.*" /tmp/build_vim.log | tail -1 | cut -d= -f2)
timeout 160 python3 tools/official/bench_official_scan.py ${V:+--vmamba-build-dir "$V"} ${M:+--vim-build-dir "$M"} \
    --json "$OUT/official_scan.json" 2>&1 | tee "$OUT/official_scan.log"
