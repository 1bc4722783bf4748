# Sourced by the tools/gpu_seq_kernels*.sh device scripts: $OUT, the carried wheels and our project installed
# into the device image (its torch left alone), and a line of what the device is, written to $OUT/$1_device.txt.
#   . tools/gpu_setup.sh TAG
set -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-index .cache/wheels/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
{ nvidia-smi --query-gpu=name --format=csv,noheader; date -u
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } | tee "$OUT/$1_device.txt"
