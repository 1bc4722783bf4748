#!/usr/bin/env bash
# Extract the parts of the official MSVMamba, EfficientVMamba and Vim repos that gpu_official_all.sh needs into
# the git-ignored scratch dir .cache/official/<Repo> (carried to the GPU machine, which has no internet).  Nothing
# official is ever committed to the project; this script and the build/bench scripts only fetch, copy and patch.
# (.cache/official/VMamba, for build_vmamba_kernel.sh, was extracted the same way from MzeroMiko/VMamba 2ed52ea.)
#
#   tools/official/fetch_official_sources.sh [msvmamba] [efficient_vmamba] [vim]     (default: all three)
#
# Source per repo: $SRC_MSVMAMBA / $SRC_EFFICIENT_VMAMBA / $SRC_VIM if set (a local git dir, e.g. a mirror), else
# a shallow fetch of the pinned commit from github.com.  Pinned commits (those measured):
#   YuHengsss/MSVMamba        c39401918e94f11eb29e4932b901b3fd139f1377
#   TerryPei/EfficientVMamba  0bc5ee288b402d648641f5494b73e9d152e0c62b
#   hustvl/Vim                dd0358ad1e42701f22afbefa0717cc8825cf9f45
# Sizes: ~0.5 MB, ~0.35 MB, ~0.6 MB (the whole .cache stays ~7 MB, far below the 64 MB a device call carries).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST_ROOT=${DEST_ROOT:-$(cd "$HERE/../.." && pwd)/.cache/official}

declare -A GH=([msvmamba]=YuHengsss/MSVMamba [efficient_vmamba]=TerryPei/EfficientVMamba [vim]=hustvl/Vim)
declare -A DIR=([msvmamba]=MSVMamba [efficient_vmamba]=EfficientVMamba [vim]=Vim)
declare -A PIN=([msvmamba]=c39401918e94f11eb29e4932b901b3fd139f1377
                [efficient_vmamba]=0bc5ee288b402d648641f5494b73e9d152e0c62b
                [vim]=dd0358ad1e42701f22afbefa0717cc8825cf9f45)
declare -A PATHS=(
  [msvmamba]="kernels/selective_scan/csrc kernels/selective_scan/setup.py classification/models/__init__.py
              classification/models/utils.py classification/models/vmamba.py classification/models/csm_triton.py
              classification/configs/ms_vssm"
  [efficient_vmamba]="selective_scan/csrc selective_scan/setup.py selective_scan/selective_scan classification/models
                      classification/lib/__init__.py classification/lib/models/__init__.py
                      classification/lib/models/operations.py classification/lib/models/mdconv.py
                      classification/configs/vssm"
  [vim]="vim/models_mamba.py vim/rope.py vim/LICENSE mamba-1p1p1/mamba_ssm mamba-1p1p1/csrc mamba-1p1p1/setup.py
         mamba-1p1p1/LICENSE causal-conv1d/causal_conv1d causal-conv1d/csrc causal-conv1d/setup.py
         causal-conv1d/LICENSE")

MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(msvmamba efficient_vmamba vim)
for m in "${MODELS[@]}"; do
    [ -n "${GH[$m]:-}" ] || { echo "unknown model $m" >&2; exit 2; }
    var="SRC_${m^^}"
    src=${!var:-}
    tmp=""
    if [ -z "$src" ]; then
        tmp=$(mktemp -d /tmp/official_src.XXXXXX)
        git -C "$tmp" init -q
        git -C "$tmp" fetch -q --depth 1 "https://github.com/${GH[$m]}" "${PIN[$m]}"
        src=$tmp; rev=FETCH_HEAD
    else
        rev=${PIN[$m]}
        git -C "$src" cat-file -e "$rev^{commit}" 2>/dev/null \
            || { echo "[fetch] $src lacks ${PIN[$m]}; using HEAD"; rev=HEAD; }
    fi
    out="$DEST_ROOT/${DIR[$m]}"
    rm -rf "$out"; mkdir -p "$out"
    # shellcheck disable=SC2086
    git -C "$src" archive "$rev" ${PATHS[$m]} | tar -x -C "$out"
    git -C "$src" rev-parse "$rev" > "$out/COMMIT"
    [ -n "$tmp" ] && rm -rf "$tmp"
    echo "[fetch] ${GH[$m]} $(cat "$out/COMMIT") -> $out ($(du -sh "$out" | cut -f1))"
done
du -sh "$DEST_ROOT"
