#!/usr/bin/env bash
# Install the MMDetection / MMSegmentation extra into a venv, including mmcv 2.1.0 with compiled ops.
#
#   bash tools/install_mm.sh [VENV]          (VENV defaults to .venv)
#
# mmcv 2.1.0 publishes no wheel for our torch, and mmcv-lite is not enough (mmdet and mmseg import mmcv.ops
# when their model packages load), so mmcv is built from its source release once and the wheel is cached
# outside the repository, keyed by torch version and op flavour, then reused on every later call.
#
# Environment:
#   VSSM_CACHE       cache root (default ~/.cache/vssm); wheels go to $VSSM_CACHE/wheels
#   VSSM_MMCV_CUDA   auto (default): build CUDA ops when torch sees a GPU; 1: always build CUDA ops
#                    (needs nvcc / CUDA_HOME); 0: CPU ops only
#   MAX_JOBS         parallel compile jobs (default: number of CPU cores)
#
# Idempotent: when mmcv (with ops), mmdet, mmseg and the rest of the extra are already importable at the
# pinned versions, it only checks and exits (about a second).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv}"
PY="$VENV/bin/python"
MMCV_VERSION=2.1.0
CACHE="${VSSM_CACHE:-$HOME/.cache/vssm}"
CUDA_MODE="${VSSM_MMCV_CUDA:-auto}"

if [ ! -x "$PY" ]; then
    echo "install_mm.sh: no python at $PY; create the venv first (make install)" >&2
    exit 2
fi
case "$CUDA_MODE" in auto|0|1) ;; *)
    echo "install_mm.sh: VSSM_MMCV_CUDA must be auto, 0 or 1, got '$CUDA_MODE'" >&2; exit 2;;
esac

# The mm extra as written in pyproject.toml; installed by name so that the core pins (torch) are left alone.
mapfile -t MM_REQS < <("$PY" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["mm"]))
EOF
)

installed_ok() {
    # Everything importable at the pinned versions, mmcv with its compiled ops, setuptools < 70 at run time
    # (mmengine imports pkg_resources for `mmdet::` / `mmseg::` config bases).
    "$PY" - "$MMCV_VERSION" "${MM_REQS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
from packaging.requirements import Requirement
mmcv_version, reqs = sys.argv[1], sys.argv[2:]
try:
    for r in map(Requirement, reqs):
        if not r.specifier.contains(version(r.name), prereleases=True):
            sys.exit(1)
    if version("mmcv") != mmcv_version:
        sys.exit(1)
except PackageNotFoundError:
    sys.exit(1)
import mmcv.ops  # noqa: F401  (fails when only mmcv-lite or a broken build is present)
EOF
}

if installed_ok; then
    echo "install_mm.sh: mm extra and mmcv $MMCV_VERSION with ops already installed in $VENV"
    exit 0
fi

# Build tools first: setuptools<70 (mmcv's setup.py and mmengine both need pkg_resources), wheel, ninja.
"$PY" -m pip install -q "setuptools<70" wheel ninja packaging

read -r TORCH_TAG GPU_SEEN < <("$PY" -c "
import torch
cuda = torch.version.cuda or 'none'
print(torch.__version__.split('+')[0] + '-cu' + cuda.replace('.', ''), int(torch.cuda.is_available()))")
if [ "$CUDA_MODE" = 1 ] || { [ "$CUDA_MODE" = auto ] && [ "$GPU_SEEN" = 1 ]; }; then
    FLAVOUR=cuda
else
    FLAVOUR=cpu
fi
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$FLAVOUR"
mkdir -p "$CACHE/wheels"
# One build at a time per cache: a second caller waits here and then reuses the first one's wheel.
exec 9>"$CACHE/wheels/.mmcv-$MMCV_VERSION-torch$TORCH_TAG-$FLAVOUR.lock"
if ! flock -n 9; then
    echo "install_mm.sh: another process is building this mmcv wheel; waiting for it"
    flock 9
fi
WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"

if [ -z "$WHEEL" ]; then
    echo "install_mm.sh: building mmcv $MMCV_VERSION ($FLAVOUR ops) for torch $TORCH_TAG; this takes ~10 minutes on 2 cores"
    SRC_ROOT="$CACHE/src"
    mkdir -p "$SRC_ROOT"
    SDIST="$SRC_ROOT/mmcv-$MMCV_VERSION.tar.gz"
    if [ ! -f "$SDIST" ]; then
        "$PY" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$SRC_ROOT"
    fi
    BUILD_DIR="$(mktemp -d "$SRC_ROOT/build.XXXXXX")"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    tar -xzf "$SDIST" -C "$BUILD_DIR"
    SRC="$BUILD_DIR/mmcv-$MMCV_VERSION"
    # Recent torch headers need C++20; mmcv 2.1.0 hard-codes C++14 / C++17 in its setup.py.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    if [ "$FLAVOUR" = cuda ]; then
        export FORCE_CUDA=1
    else
        export FORCE_CUDA=0
        export CUDA_VISIBLE_DEVICES=""   # keeps setup.py from choosing the CUDA build on a GPU machine
    fi
    export MMCV_WITH_OPS=1
    export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    "$PY" -m pip wheel --no-build-isolation --no-deps -w "$BUILD_DIR/dist" "$SRC"
    mkdir -p "$WHEEL_DIR"
    cp "$BUILD_DIR"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEEL_DIR"/
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)"
    echo "install_mm.sh: cached $WHEEL"
else
    echo "install_mm.sh: reusing cached $WHEEL"
fi

# mmcv first (from the cached wheel), then the extra; setuptools<70 is part of the extra, so it stays pinned.
"$PY" -m pip install -q "$WHEEL"
"$PY" -m pip install -q "${MM_REQS[@]}"

if ! installed_ok; then
    echo "install_mm.sh: installation finished but the check failed; run:" >&2
    echo "  $PY -c 'import mmcv.ops, mmdet, mmseg'" >&2
    exit 1
fi
echo "install_mm.sh: mm extra and mmcv $MMCV_VERSION with ops installed in $VENV"
