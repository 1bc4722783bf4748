#!/usr/bin/env bash
# On the GPU machine: build the official VMamba selective-scan kernel from a scratch copy of the official repo
# (.cache/official/VMamba, carried with the tree) and measure the official VMamba-T v2 with the protocol of
# tools/benchmark.py --gpu.  Logs and JSON go to $OUT (default ./gpu_logs), all named official_*.
#
#   tools/official/gpu_official.sh [all|build|bench]     (default all = build then bench)
#
# Safe to run in the background next to other jobs: a private build dir (mktemp under /tmp, or $VMAMBA_BUILD_DIR),
# nothing pip-installed, no process killed but its own (timeouts).  "build" only needs CPUs (nvcc, niced), so a
# caller can start it early and run "bench" later, when the GPU is free (the bench numbers are only meaningful
# with nothing else on the GPU):
#     tools/official/gpu_official.sh build &  ...other GPU work...;  wait;  tools/official/gpu_official.sh bench
# The build dir is passed between the phases in $OUT/official_build_dir.txt.
#
# Env: OUT, PYTHON (python3), BUILD_TIMEOUT (360 s), BENCH_TIMEOUT (180 s), MAX_JOBS (16), NVCC_THREADS (4),
#      TORCH_CUDA_ARCH_LIST (9.0), BATCH (128), IMG (224), ITERS (20), WARMUP (5), VMAMBA_BUILD_DIR.
# Exit status: that of the failing phase (124 = timed out), else 0.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PHASE=${1:-all}
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
STATE="$OUT/official_build_dir.txt"

build() {
    local dir=${VMAMBA_BUILD_DIR:-$(mktemp -d /tmp/vmamba_official.XXXXXX)}
    echo "$dir" > "$STATE"
    { date -u; echo "[official] build dir $dir"; } | tee "$OUT/official_build.log"
    timeout "${BUILD_TIMEOUT:-360}" nice -n 5 bash "$HERE/build_vmamba_kernel.sh" "$dir" 2>&1 \
        | tee -a "$OUT/official_build.log"
    local rc=${PIPESTATUS[0]}
    echo "[official] build rc=$rc ($(date -u))" | tee -a "$OUT/official_build.log"
    return "$rc"
}

bench() {
    local dir=${VMAMBA_BUILD_DIR:-}
    [ -z "$dir" ] && [ -f "$STATE" ] && dir=$(cat "$STATE")
    if [ -z "$dir" ] || ! ls "$dir"/kernels/selective_scan/selective_scan_cuda_oflex*.so >/dev/null 2>&1; then
        echo "[official] no built kernel (build dir '${dir}'): run the build phase first" | tee "$OUT/official_bench.log"
        return 2
    fi
    { date -u; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv 2>/dev/null; } | tee "$OUT/official_bench.log"
    ( cd "$REPO" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" timeout "${BENCH_TIMEOUT:-180}" "$PYTHON" \
        tools/official/bench_official_vmamba.py --build-dir "$dir" --batch "${BATCH:-128}" --img "${IMG:-224}" \
        --iters "${ITERS:-20}" --warmup "${WARMUP:-5}" --compare-vssm --json "$OUT/official_vmamba_tiny.json" ) 2>&1 \
        | tee -a "$OUT/official_bench.log"
    local rc=${PIPESTATUS[0]}
    echo "[official] bench rc=$rc ($(date -u))" | tee -a "$OUT/official_bench.log"
    return "$rc"
}

case "$PHASE" in
    build) build ;;
    bench) bench ;;
    all) build && bench ;;
    *) echo "usage: $0 [all|build|bench]" >&2; exit 2 ;;
esac
