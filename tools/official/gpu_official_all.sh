#!/usr/bin/env bash
# ONE device call for all official baselines of issue #12: build the official CUDA extensions of VMamba-T (oflex),
# MSVMamba-T, EfficientVMamba-B and Vim-tiny from scratch copies of the official repos (.cache/official/<Repo>,
# carried with the tree; patched copies under /tmp only), all four builds at once in the background (CPU only),
# then benchmark the four official models one after the other (GPU) with the protocol of tools/benchmark.py --gpu.
#
#   OUT=... tools/official/gpu_official_all.sh [all|build|bench]      (default all)
#   device call (carry [".cache"]: .cache/official/{VMamba,MSVMamba,EfficientVMamba,Vim} + .cache/wheels, ~7 MB;
#   timeout_s 600; the pip line only so that --compare-vssm can import vssm with the timm it needs):
#     pip install -q --no-deps --no-index .cache/wheels/timm-1.0.31-py3-none-any.whl; \
#     OUT=$OUT bash tools/official/gpu_official_all.sh
#
# Files written to $OUT (6, all named official_*):
#   official_build.log   the four build logs one after the other, with rc and seconds per build
#   official_bench.log   the four bench logs (nvidia-smi, kernel-use checks, per-precision numbers)
#   official_vmamba_tiny.json  official_msvmamba_tiny.json  official_efficient_vmamba_base.json
#   official_vim_tiny_patch16_224.json      {"official_<our timm name>": {params, img, batch, infer_fp32_img_s,
#       infer_fp32_peak_gb, train_fp32_img_s, train_fp32_peak_gb, infer_bf16_*, train_bf16_*, gpu, ...}}
# A model whose build fails or times out is skipped in the bench phase (its JSON is missing; the logs say why);
# the others go on.
#
# Expected times on the 16-core H100 machine (sm_90 only, MAX_JOBS=16, the four builds at once; Vim niced 5, the
# others 10, so the scheduler favours Vim, the critical path):
#   VMamba oflex (3 TUs)                          measured there alone: ~80 s; expected 100-150 s next to the others
#   MSVMamba selective_scan_cuda_core (3 TUs: "cus", the same sources as VMamba's "core")       ~60-120 s
#   EfficientVMamba selective_scan_cuda_core (5 TUs: one with bwd, fwd for nrows 2..4)          ~60-150 s
#   Vim: mamba_ssm 1.1.1 selective_scan_cuda (10 TUs: fwd x 3 dtypes, bwd x 3 dtypes x real/complex) and
#        causal_conv1d_cuda (4 TUs) at once                                                     ~150-300 s
# Measured here (2 shared cores, a CI job beside, niced): single TUs: mamba bwd_bf16_real.cu 255 s (heavy CI
# load) and bwd_fp32_complex.cu 107 s, fwd_fp16.cu 48 s, causal_conv1d_bwd.cu 167 s, causal_conv1d_fwd.cu 21 s,
# EfficientVMamba selective_scan_core.cu 68 s, each .cpp ~30 s; whole modules (linked and imported): MSVMamba
# 108 s and EfficientVMamba 152 s (MAX_JOBS=2), causal_conv1d_cuda 231 s (MAX_JOBS=1).  The Vim build is the one that may approach BUILD_TIMEOUT: if it is killed, the log
# says so and the other three are still measured (or give Vim a device call of its own: MODELS=vim).
# Bench: ~30-60 s per model (model creation, kernel-use check, fp32 + bf16, infer + train, 5 warmup + 20 iters),
# in the order msvmamba, efficient_vmamba, vim, vmamba (VMamba last: it was measured in an earlier run already).
# Phase limits: BUILD_TIMEOUT (360 s, each build, they run in parallel), BENCH_TIMEOUT (120 s each), and the
# whole script stays under TOTAL_BUDGET (560 s, for a 600 s device call): a bench gets
# min(BENCH_TIMEOUT, what is left - 5 s) and is skipped if under 30 s are left.
#
# Env: OUT (gpu_logs), PYTHON (python3), MAX_JOBS (16), NVCC_THREADS (4), TORCH_CUDA_ARCH_LIST (9.0), BATCH (128),
#      IMG (224), ITERS (20), WARMUP (5), MODELS ("msvmamba efficient_vmamba vim vmamba":
#      a subset is fine; the benches run in this order),
#      OFFICIAL_ALL_WORK (scratch root; default a fresh mktemp -d /tmp/official_all.XXXXXX, remembered in
#      /tmp/official_all.dir between "build" and "bench").
# Safe next to other jobs: private /tmp dirs, nothing pip-installed, kills nothing but its own timeouts.
set -uo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PHASE=${1:-all}
PY=$(command -v "${PYTHON:-python3}")
export PYTHON="$PY" PYTHONUNBUFFERED=1
export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} NVCC_THREADS=${NVCC_THREADS:-4}
MODELS=${MODELS:-msvmamba efficient_vmamba vim vmamba}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-360}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
TOTAL_BUDGET=${TOTAL_BUDGET:-560}
STATE=/tmp/official_all.dir

declare -A NAME=([vmamba]=vmamba_tiny [msvmamba]=msvmamba_tiny [efficient_vmamba]=efficient_vmamba_base
                 [vim]=vim_tiny_patch16_224)

work_dir() {
    if [ -n "${OFFICIAL_ALL_WORK:-}" ]; then mkdir -p "$OFFICIAL_ALL_WORK"; echo "$OFFICIAL_ALL_WORK"
    elif [ "$PHASE" = bench ] && [ -f "$STATE" ]; then cat "$STATE"
    else mktemp -d /tmp/official_all.XXXXXX; fi
}
WORK=$(work_dir)
echo "$WORK" > "$STATE"

build_one() {  # model -> builds into $WORK/<model>, log $WORK/build_<model>.log, rc in $WORK/build_<model>.rc
    local m=$1 dir="$WORK/$1" log="$WORK/build_$1.log" t=$(date +%s) rc
    # Vim (14 TUs, the six mamba bwd ones the heaviest) is the critical path: the others yield CPU to it
    local nice_level=10
    [ "$m" = vim ] && nice_level=5
    mkdir -p "$dir"
    if [ "$m" = vmamba ]; then
        timeout "$BUILD_TIMEOUT" nice -n "$nice_level" bash "$HERE/build_vmamba_kernel.sh" "$dir" > "$log" 2>&1
    else
        timeout "$BUILD_TIMEOUT" nice -n "$nice_level" "$PY" "$HERE/build_official_ext.py" "$m" --dest "$dir" \
            > "$log" 2>&1
    fi
    rc=$?
    echo "$rc $(( $(date +%s) - t ))" > "$WORK/build_$m.rc"
}

build() {
    { date -u; echo "[official-all] work dir $WORK; building: $MODELS (in parallel, BUILD_TIMEOUT=$BUILD_TIMEOUT s," \
        "MAX_JOBS=$MAX_JOBS, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, $(nproc) cores)"
      "$PY" -c "import torch; print('[official-all] torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1
      command -v nvcc >/dev/null && nvcc --version | tail -1; } | tee "$OUT/official_build.log"
    local pids=() m
    for m in $MODELS; do rm -f "$WORK/build_$m.rc"; build_one "$m" & pids+=($!); done
    wait "${pids[@]}"
    local fail=0
    for m in $MODELS; do
        local rc=999 sec=?
        [ -f "$WORK/build_$m.rc" ] && read -r rc sec < "$WORK/build_$m.rc"
        [ "$rc" = 0 ] || fail=1
        { echo; echo "==================== build $m: rc=$rc in ${sec}s (124 = timed out) ===================="
          # ninja/nvcc output can be long: keep the head and the tail of each log
          if [ "$(wc -l < "$WORK/build_$m.log")" -gt 160 ]; then
              head -40 "$WORK/build_$m.log"; echo "[... $(( $(wc -l < "$WORK/build_$m.log") - 160 )) lines ...]"
              tail -120 "$WORK/build_$m.log"
          else cat "$WORK/build_$m.log"; fi
          for f in "$WORK/$m"/build_*.log; do  # build_official_ext.py's per-module ninja logs, errors only
              [ -f "$f" ] && [ "$rc" != 0 ] && { echo "---- $f (error lines)"; grep -i -m 40 "error" "$f"; }
          done; } >> "$OUT/official_build.log"
        echo "[official-all] build $m: rc=$rc in ${sec}s"
    done
    echo "[official-all] build phase done after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/official_build.log"
    return $fail
}

bench() {
    { date -u; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv 2>/dev/null; } | tee "$OUT/official_bench.log"
    local m fail=0
    for m in $MODELS; do
        local dir="$WORK/$m" json="$OUT/official_${NAME[$m]}.json" rc=999 sec
        [ -f "$WORK/build_$m.rc" ] && read -r rc sec < "$WORK/build_$m.rc"
        if [ "$rc" != 0 ]; then
            echo "[official-all] $m: build rc=$rc, not benchmarked" | tee -a "$OUT/official_bench.log"; fail=1; continue
        fi
        local left=$(( TOTAL_BUDGET - ($(date +%s) - T0) - 5 )) lim=$BENCH_TIMEOUT
        [ "$left" -lt "$lim" ] && lim=$left
        if [ "$lim" -lt 30 ]; then
            echo "[official-all] $m: only ${left}s left of TOTAL_BUDGET=$TOTAL_BUDGET, skipped" \
                | tee -a "$OUT/official_bench.log"; fail=1; continue
        fi
        echo "==================== bench $m (timeout ${lim}s, $(date -u +%T)) ====================" \
            | tee -a "$OUT/official_bench.log"
        if [ "$m" = vmamba ]; then
            set -- "$HERE/bench_official_vmamba.py" --build-dir "$dir"
        else
            set -- "$HERE/bench_official_others.py" "$m" --build-dir "$dir"
        fi
        ( cd "$REPO" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" timeout "$lim" "$PY" "$@" \
            --batch "${BATCH:-128}" --img "${IMG:-224}" --iters "${ITERS:-20}" --warmup "${WARMUP:-5}" \
            --compare-vssm --json "$json" ) 2>&1 | grep -v -e FutureWarning -e '@torch.cuda.amp' -e '@custom_' \
            | tee -a "$OUT/official_bench.log"
        rc=${PIPESTATUS[0]}
        [ "$rc" = 0 ] || fail=1
        echo "[official-all] bench $m rc=$rc (124 = timed out) after $(( $(date +%s) - T0 )) s" \
            | tee -a "$OUT/official_bench.log"
    done
    return $fail
}

case "$PHASE" in
    build) build ;;
    bench) bench ;;
    all) build; b=$?; bench; r=$?; exit $(( b || r )) ;;
    *) echo "usage: $0 [all|build|bench]" >&2; exit 2 ;;
esac
