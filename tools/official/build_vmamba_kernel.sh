#!/usr/bin/env bash
# Build the official VMamba selective-scan CUDA extension ("oflex" variant, the one VMamba-T v2 uses) from a
# SCRATCH COPY of the official repo, patched for CUDA 13 / recent torch.  The project tree is never modified.
#
#   tools/official/build_vmamba_kernel.sh [BUILD_DIR]
#
# Source : $VMAMBA_SRC (default <repo>/.cache/official/VMamba, extracted from github:MzeroMiko/VMamba with
#          kernels/selective_scan/ and classification/models/).
# Output : BUILD_DIR (default $VMAMBA_BUILD_DIR, else a fresh mktemp -d /tmp/vmamba_official.XXXXXX), holding
#          the patched copy; the built module lands in BUILD_DIR/kernels/selective_scan/ (build_ext --inplace,
#          nothing is pip-installed, so concurrent runs and other jobs are not affected).  The last line printed
#          is "VMAMBA_BUILD_DIR=<dir>"; the bench script takes that dir (--build-dir).
# Env    : PYTHON (python3), TORCH_CUDA_ARCH_LIST (9.0), MAX_JOBS (16), NVCC_THREADS (4),
#          VMAMBA_PATCH_ONLY=1 (copy + patch + syntax check only, no compilation: for machines without a GPU).
#
# Patches applied to the copy (CUDA 13's CUB dropped cub::LaneId / cub::CTA_SYNC; torch >= 2.10 headers need
# C++20):
#   * cub::LaneId()   -> vmamba_lane_id()  (inline PTX  mov.u32 %0, %laneid;  defined in cub_extra.cuh)
#   * cub::CTA_SYNC() -> __syncthreads()
#   * a minimal setup file (setup_oflex.py) instead of the repo's setup.py, which queries the GPU for
#     "-arch=sm_XY" and pins -std=c++17: same sources and flags, but -std=c++20 and arches from
#     TORCH_CUDA_ARCH_LIST (so it also builds where no GPU is visible).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SRC=${VMAMBA_SRC:-$REPO/.cache/official/VMamba}
PYTHON=$(command -v "${PYTHON:-python3}")   # made absolute (not resolved: keep a venv's python): the build cds
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
if [ -z "${CUDA_HOME:-}" ]; then   # torch guesses CUDA_HOME from the nvcc on PATH; prefer the real toolkit root
    for d in /usr/local/cuda /usr/local/cuda-13.0; do [ -x "$d/bin/nvcc" ] && { export CUDA_HOME=$d; break; }; done
fi
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
NVCC_THREADS=${NVCC_THREADS:-4}

if [ ! -f "$SRC/kernels/selective_scan/csrc/selective_scan/reverse_scan.cuh" ]; then
    echo "official VMamba source not found under $SRC (extract github:MzeroMiko/VMamba there)" >&2
    exit 2
fi
DEST=${1:-${VMAMBA_BUILD_DIR:-}}
if [ -z "$DEST" ]; then DEST=$(mktemp -d /tmp/vmamba_official.XXXXXX); fi
mkdir -p "$DEST"
echo "[build] source $SRC -> scratch copy $DEST"
rm -rf "$DEST/kernels" "$DEST/classification"
mkdir -p "$DEST/kernels" "$DEST/classification"
cp -r "$SRC/kernels/selective_scan" "$DEST/kernels/"
cp -r "$SRC/classification/models" "$DEST/classification/"
[ -d "$SRC/classification/configs" ] && cp -r "$SRC/classification/configs" "$DEST/classification/"
[ -f "$SRC/COMMIT" ] && cp "$SRC/COMMIT" "$DEST/"

KS="$DEST/kernels/selective_scan"
CS="$KS/csrc/selective_scan"

# --- patch 1: lane id / CTA sync (removed from CUB in CUDA 13) -------------------------------------------
cat >> "$CS/cub_extra.cuh" <<'EOF'

// ---- added by tools/official/build_vmamba_kernel.sh: CUB LaneId was removed from CUB in CUDA 13 ----
#ifndef VMAMBA_LANE_ID_DEFINED
#define VMAMBA_LANE_ID_DEFINED
__device__ __forceinline__ unsigned int vmamba_lane_id()
{
    unsigned int ret;
    asm("mov.u32 %0, %%laneid;" : "=r"(ret));
    return ret;
}
#endif
EOF
grep -rl --include='*.cuh' --include='*.cu' --include='*.h' -e 'cub::LaneId()' -e 'cub::CTA_SYNC()' "$CS" \
    | while read -r f; do
        sed -i -e 's/cub::LaneId()/vmamba_lane_id()/g' -e 's/cub::CTA_SYNC()/__syncthreads()/g' "$f"
        echo "[build] patched $f"
    done
if grep -rn -e 'cub::LaneId' -e 'cub::CTA_SYNC' "$CS" | grep -v '^\s*//' | grep -v ':\s*//' ; then
    echo "[build] unpatched cub::LaneId / cub::CTA_SYNC remain (see above)" >&2; exit 3
fi
grep -q '#include "cub_extra.cuh"' "$CS/reverse_scan.cuh" || { echo "reverse_scan.cuh no longer includes cub_extra.cuh" >&2; exit 3; }

# --- patch 2: a minimal setup for the oflex module only, C++20, arch from TORCH_CUDA_ARCH_LIST ------------
cat > "$KS/setup_oflex.py" <<EOF
# written by tools/official/build_vmamba_kernel.sh (sources and flags of the official setup.py, "oflex" only)
import os
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

this_dir = os.path.dirname(os.path.abspath(__file__))
setup(
    name="selective_scan_oflex_official",
    ext_modules=[CUDAExtension(
        name="selective_scan_cuda_oflex",
        sources=[
            "csrc/selective_scan/cusoflex/selective_scan_oflex.cpp",
            "csrc/selective_scan/cusoflex/selective_scan_core_fwd.cu",
            "csrc/selective_scan/cusoflex/selective_scan_core_bwd.cu",
        ],
        extra_compile_args={
            "cxx": ["-O3", "-std=c++20"],
            "nvcc": ["-O3", "-std=c++20",
                     "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                     "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                     "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                     "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
                     "-lineinfo", "--threads", "$NVCC_THREADS"],
        },
        include_dirs=[os.path.join(this_dir, "csrc", "selective_scan")]
                     + [d for d in os.environ.get("VMAMBA_EXTRA_INCLUDE", "").split(":") if d],
    )],
    cmdclass={"build_ext": BuildExtension},
)
EOF
# the official setup.py is kept for reference only; make sure the stock one at least parses
"$PYTHON" -c "import ast,sys; ast.parse(open(sys.argv[1]).read()); ast.parse(open(sys.argv[2]).read())" \
    "$KS/setup.py" "$KS/setup_oflex.py"
echo "[build] patches applied"

if [ "${VMAMBA_PATCH_ONLY:-0}" = 1 ]; then
    echo "[build] VMAMBA_PATCH_ONLY=1: not compiling"
    echo "VMAMBA_BUILD_DIR=$DEST"
    exit 0
fi

# --- build ------------------------------------------------------------------------------------------------
# A slim CUDA toolkit (nvcc + cudart only) lacks the cuSPARSE/cuBLAS/... headers that torch's ATen/cuda headers
# include; then take the missing top-level headers (symlinks only) from the pip nvidia-* wheels torch ships with.
CUDA_INC=$("$PYTHON" -c "import torch.utils.cpp_extension as ce; print((ce.CUDA_HOME or '') + '/include')")
if [ ! -f "$CUDA_INC/cusparse.h" ]; then
    SHIM="$DEST/shim_include"; mkdir -p "$SHIM"
    for d in $("$PYTHON" -c "import nvidia, glob, os; [print(p) for r in nvidia.__path__ for p in glob.glob(os.path.join(r, '*', 'include'))]" 2>/dev/null); do
        for h in "$d"/*.h "$d"/*.hpp; do
            [ -f "$h" ] || continue; b=$(basename "$h")
            [ -e "$CUDA_INC/$b" ] || [ -e "$SHIM/$b" ] || ln -s "$h" "$SHIM/$b"
        done
    done
    export VMAMBA_EXTRA_INCLUDE="$SHIM"
    echo "[build] $CUDA_INC has no cusparse.h: shim include dir $SHIM ($(ls "$SHIM" | wc -l) headers from pip nvidia wheels)"
    [ -e "$SHIM/cusparse.h" ] || echo "[build] WARNING: no cusparse.h found anywhere; the .cpp will likely fail" >&2
fi
"$PYTHON" - <<'EOF'
import torch, torch.utils.cpp_extension as ce
print("[build] torch", torch.__version__, "cuda", torch.version.cuda, "CUDA_HOME", ce.CUDA_HOME,
      "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None, flush=True)
EOF
command -v nvcc >/dev/null && nvcc --version | tail -2 || true
echo "[build] TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS nvcc --threads $NVCC_THREADS"
t0=$(date +%s)
( cd "$KS" && "$PYTHON" setup_oflex.py build_ext --inplace --build-temp "$DEST/build_tmp" )
echo "[build] compiled in $(( $(date +%s) - t0 )) s"
ls -la "$KS"/selective_scan_cuda_oflex*.so
echo "[build] built modules:"
( cd "$KS" && "$PYTHON" -c "
import glob, importlib, torch
for so in sorted(glob.glob('selective_scan_cuda_*.so')):
    name = so.split('.')[0]
    m = importlib.import_module(name)
    print('  ', name, '->', m.__file__, [n for n in dir(m) if not n.startswith('_')])
" )
echo "VMAMBA_BUILD_DIR=$DEST"
