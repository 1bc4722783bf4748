#!/usr/bin/env bash
# On the GPU machine, one call (issue 8): mm packages from carried wheels, mmcv 2.1.0 with CUDA ops (built here
# unless a built wheel is carried), our project, then tools/benchmark_mm.py (UperNet + VMamba-T 512x512 batch 4,
# Mask R-CNN 1x + VMamba-T 1333x800 batch 2; fp32 and bf16; time per iteration and peak memory).
#
#   device run:  command "bash tools/gpu_mm.sh", carry [".cache/mm"], timeout_s 600
#
# Needs (git-ignored, carried): .cache/mm/*.whl (mmengine, mmdet, mmsegmentation, timm and the pure-Python /
# cp312 packages the device image lacks), .cache/mm/mmcv-2.1.0.tar.gz (source release), optionally
# .cache/mm/cuda/mmcv-2.1.0-cp312-cp312-linux_x86_64.whl (or its split parts *.whl.part-*) from an earlier run.
# No network is used: everything is installed with --no-index into $SITE (on PYTHONPATH); torch is never touched.
#
# Without a carried CUDA wheel, mmcv is built (c++20 patch as tools/install_mm.sh, FORCE_CUDA=1,
# TORCH_CUDA_ARCH_LIST=9.0, MAX_JOBS=16; 58 .cu + ~60 .cpp files) with a time limit of BUILD_TIMEOUT s, and the
# wheel is copied to $OUT (split into 15 MiB parts if larger; keep it in .cache/mm/cuda/ for later runs). The
# benchmark then runs in what is left of BUDGET s. If the build does not finish in time, the call ends after
# it (log in $OUT/mmcv_build.log, with every compile error collected by `ninja -k 0` when it failed); then run
# again with BUILD_TIMEOUT=540 SKIP_BENCH=1 (phase 1: wheel only), carry the returned wheel, run plainly (phase 2).
#
# $OUT gets at most: gpu_mm.log (everything), mmcv_build.log, bench_mm.json, the wheel (1-5 files).
# Environment: BUDGET (default 570 s for the whole script), BUILD_TIMEOUT (default 420 s), SKIP_BENCH=1,
# BENCH_ARGS (extra arguments for tools/benchmark_mm.py, e.g. "--iters 20"), MAX_JOBS (default nproc).
set -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_mm.log") 2>&1
export PYTHONUNBUFFERED=1
BUDGET=${BUDGET:-570}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-420}
MM=.cache/mm
SITE=/tmp/mmsite
WORK=/tmp/mmcv_build
PY=python3
MMCV_VERSION=2.1.0
left() { echo $((BUDGET - SECONDS)); }
stamp() { echo "== [${SECONDS}s] $*"; }

stamp "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
date -u; nproc
$PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
nvcc --version | tail -2

ls "$MM"/*.whl >/dev/null 2>&1 || { echo "gpu_mm.sh: no wheels in $MM (carry .cache/mm)"; exit 2; }

stamp "our project (editable, no deps; before PYTHONPATH so the image's own setuptools builds it)"
$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -3

stamp "carried wheels -> $SITE"
rm -rf "$SITE"
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$MM"/*.whl 2>&1 | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu_mm.sh: installing the carried wheels failed"; exit 2; }
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import mmengine, timm, setuptools; print('mmengine', mmengine.__version__, 'timm', timm.__version__, 'setuptools', setuptools.__version__)"

# --- mmcv with CUDA ops: carried wheel, or build it --------------------------------------------------------
WHEEL_NAME=mmcv-$MMCV_VERSION-cp312-cp312-linux_x86_64.whl
mkdir -p "$WORK"
WHEEL=""
if [ -f "$MM/cuda/$WHEEL_NAME" ]; then
    WHEEL="$MM/cuda/$WHEEL_NAME"
elif ls "$MM/cuda/$WHEEL_NAME".part-* >/dev/null 2>&1; then
    cat "$MM/cuda/$WHEEL_NAME".part-* > "$WORK/$WHEEL_NAME" && WHEEL="$WORK/$WHEEL_NAME"
fi
BUILT=0
if [ -n "$WHEEL" ]; then
    stamp "using carried $WHEEL ($(du -h "$WHEEL" | cut -f1))"
else
    stamp "building mmcv $MMCV_VERSION with CUDA ops (limit ${BUILD_TIMEOUT}s)"
    rm -rf "$WORK/mmcv-$MMCV_VERSION" "$WORK/dist"
    tar -xzf "$MM/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK" || exit 2
    SRC="$WORK/mmcv-$MMCV_VERSION"
    # Recent torch headers need C++20; mmcv 2.1.0 hard-codes C++14 / C++17 (the patch of tools/install_mm.sh).
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    # A toolkit root with bin/nvcc and include/cuda_runtime.h (an nvcc on PATH may be a wrapper script elsewhere).
    for c in "${CUDA_HOME:-}" /usr/local/cuda /usr/local/cuda-13* /opt/cuda \
             "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")" \
             "$($PY -c "from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or '')" 2>/dev/null)"; do
        if [ -n "$c" ] && [ -x "$c/bin/nvcc" ] && [ -f "$c/include/cuda_runtime.h" ]; then CUDA_HOME=$c; break; fi
    done
    export CUDA_HOME
    export PATH="$CUDA_HOME/bin:$PATH"
    echo "CUDA_HOME=$CUDA_HOME"
    # torch's CUDA headers include cusparse.h / cublas_v2.h: when the toolkit lacks them, use the pip CUDA packages'.
    if [ ! -f "$CUDA_HOME/include/cusparse.h" ]; then
        INC=$($PY - <<'EOF'
import glob, os, site
for d in site.getsitepackages():
    for h in glob.glob(os.path.join(d, "nvidia", "**", "include", "cusparse.h"), recursive=True):
        print(os.path.dirname(h)); raise SystemExit
EOF
)
        [ -n "$INC" ] && export CPATH="$INC${CPATH:+:$CPATH}" && echo "CPATH += $INC"
    fi
    export FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)}
    echo "MAX_JOBS=$MAX_JOBS TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST; $(ls "$SRC"/mmcv/ops/csrc/pytorch/cuda/*.cu | wc -l) .cu files"
    T0=$SECONDS
    timeout "$BUILD_TIMEOUT" $PY -m pip wheel -v --no-build-isolation --no-deps --no-index -w "$WORK/dist" "$SRC" \
        > "$OUT/mmcv_build.log" 2>&1
    RC=$?
    echo "build rc=$RC after $((SECONDS - T0))s; $(grep -c '^\[[0-9]*/[0-9]*\]' "$OUT/mmcv_build.log") ninja steps logged"
    grep -o '^\[[0-9]*/[0-9]*\]' "$OUT/mmcv_build.log" | tail -1
    if [ "$RC" != 0 ]; then
        grep -n -m 20 -E "error|Error" "$OUT/mmcv_build.log"
        NINJA_DIR=$(dirname "$(ls "$SRC"/build/temp.*/build.ninja 2>/dev/null | head -1)")
        if [ "$RC" != 124 ] && [ -f "$NINJA_DIR/build.ninja" ] && [ "$(left)" -gt 120 ]; then
            stamp "collecting every compile error (ninja -k 0)"
            timeout $(( $(left) - 60 )) ninja -C "$NINJA_DIR" -k 0 -j "$MAX_JOBS" >> "$OUT/mmcv_build.log" 2>&1
            grep -E "^FAILED:" "$OUT/mmcv_build.log" | sort -u
        fi
        echo "gpu_mm.sh: mmcv build did not finish (rc $RC; 124 = time limit). See mmcv_build.log."
        exit 1
    fi
    WHEEL="$(ls "$WORK"/dist/mmcv-$MMCV_VERSION-*.whl | head -1)"
    BUILT=1
    stamp "built $WHEEL ($(du -h "$WHEEL" | cut -f1))"
fi

stamp "install mmcv"
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEEL" 2>&1 | tail -3
stamp "check: imports, RoIAlign / NMS on CUDA vs CPU"
timeout 120 $PY - <<'EOF' || { echo "gpu_mm.sh: mmcv check failed"; CHECK_FAILED=1; }
import torch, mmcv, mmcv.ops, mmdet, mmseg, mmengine, timm, vssm.mm  # noqa
from mmcv.ops import nms, roi_align
print("mmcv", mmcv.__version__, mmcv.__file__, "| mmdet", mmdet.__version__, "| mmseg", mmseg.__version__,
      "| mmengine", mmengine.__version__, "| timm", timm.__version__)
torch.manual_seed(0)
x = torch.randn(2, 8, 32, 32)
rois = torch.tensor([[0, 1.0, 1.0, 20.0, 20.0], [1, 5.0, 3.0, 30.0, 25.0], [0, 0.5, 7.0, 12.0, 31.0]])
a = roi_align(x, rois, (7, 7), 1.0, 2, "avg", True)
b = roi_align(x.cuda(), rois.cuda(), (7, 7), 1.0, 2, "avg", True).cpu()
print("roi_align CUDA vs CPU max abs diff", (a - b).abs().max().item())
boxes = torch.rand(200, 4) * 50
boxes[:, 2:] += boxes[:, :2]
scores = torch.rand(200)
k_cpu, k_gpu = nms(boxes, scores, 0.5)[1], nms(boxes.cuda(), scores.cuda(), 0.5)[1].cpu()
print("nms CUDA == CPU:", torch.equal(k_cpu, k_gpu), len(k_cpu), "kept")
assert (a - b).abs().max().item() < 1e-4 and torch.equal(k_cpu, k_gpu)
EOF

if [ "$BUILT" = 1 ]; then
    SIZE=$(stat -c %s "$WHEEL")
    echo "wheel: $SIZE bytes"
    if [ "$SIZE" -le $((15 * 1024 * 1024)) ]; then
        cp "$WHEEL" "$OUT/"
    else
        split -b 15m -d -a 1 "$WHEEL" "$OUT/$(basename "$WHEEL").part-"
        echo "wheel over 15 MiB: returned in parts $(cd "$OUT" && ls "$(basename "$WHEEL")".part-* | tr '\n' ' ')"
        echo "(cat them in order into .cache/mm/cuda/$(basename "$WHEEL"), or keep the parts there)"
    fi
fi

[ "${SKIP_BENCH:-0}" = 1 ] && { stamp "SKIP_BENCH=1: done"; exit 0; }
[ -n "${CHECK_FAILED:-}" ] && exit 1
LEFT=$(( $(left) - 10 ))
if [ "$LEFT" -lt 60 ]; then
    stamp "only ${LEFT}s left: no benchmark this call; carry the wheel and run again"
    exit 0
fi
stamp "benchmark (limit ${LEFT}s)"
timeout "$LEFT" $PY tools/benchmark_mm.py --device cuda --json "$OUT/bench_mm.json" ${BENCH_ARGS:-} 2>&1 \
    | grep --line-buffered -v -E "paramwise_options|UserWarning|warnings.warn"
echo "benchmark rc=${PIPESTATUS[0]} (124: cut at the time limit; bench_mm.json keeps the finished runs)"
stamp "done"
