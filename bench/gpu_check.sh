#!/usr/bin/env bash
# The GPU acceptance checks of docs/performance.md ("GPU acceptance"), in one run of under 8 minutes on one
# H100/H200: FlashAttention-2 vs SDPA logits (bf16, padded and packed), a real-size (0.5B, random weights) bf16
# training step padded vs packed (tokens/s, MFU with the vision tower's FLOPs, peak memory), and prefill/decode
# against transformers' LlavaOnevision. Prints one table.
#
#   bash bench/gpu_check.sh [--budget 16384] [--steps 4]      (extra arguments go to bench/gpu_check.py)
#
# Needs CUDA and flash-attn (pip install -e ".[gpu]"). PYTHON picks the interpreter (default: python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "error: no CUDA device: this script measures GPU-only numbers (bench/gpu_check.py --size tiny --device cpu is the smoke run)")'
"$PYTHON" -c 'import flash_attn' 2>/dev/null || { echo "error: flash-attn is not installed (pip install -e '.[gpu]')" >&2; exit 1; }
exec "$PYTHON" bench/gpu_check.py "$@"
