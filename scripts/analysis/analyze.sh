#!/usr/bin/env bash
# The paper's analysis figures (Figs. 7, 18-20, 24-25, 27, 32-33) for a set of checkpoints, overlaid:
#   CHECKPOINTS="Baseline=runs/baseline/stage2 +Manager=runs/manager/stage2" DATA=samples.json \
#     IMAGE_FOLDER=/data OUT=analysis/pad bash scripts/analysis/analyze.sh [python -m llava.analysis args...]
#
# Environment (see docs/analysis.md):
#   CHECKPOINTS   space-separated [LABEL=]PATH checkpoint directories                            (required)
#   OUT           folder for the CSVs, PNGs and summary.json                                    (required)
#   DATA          LLaVA-format JSON/JSONL/YAML sample set                  (this or TASKS is required)
#   IMAGE_FOLDER  root of DATA's relative image paths                                          (default: unset)
#   TASKS         comma-separated lmms-eval tasks whose documents are the samples             (default: unset)
#   INCLUDE_PATH  folder of local lmms-eval task YAMLs for TASKS                               (default: unset)
#   LIMIT         samples (DATA) or documents per task (TASKS)                                     (default: 32)
#   METRICS       comma-separated subset of the metrics                                         (default: all)
#   DEVICE        cpu | cuda                                        (default: cuda when visible, else cpu)
#   DTYPE         float32 | bfloat16 | float16                     (default: bfloat16 on cuda, else float32)
#   PYTHON        interpreter with llava installed                                            (default: python)
set -euo pipefail

die() {
    echo "error: $*" >&2
    exit 1
}

[[ -n "${CHECKPOINTS:-}" ]] || die "CHECKPOINTS is not set: space-separated [LABEL=]PATH checkpoint directories"
[[ -n "${OUT:-}" ]] || die "OUT is not set: the folder for the CSVs and PNGs"
[[ -n "${DATA:-}" || -n "${TASKS:-}" ]] || die "set DATA (a LLaVA-format sample set) or TASKS (lmms-eval tasks)"
[[ -z "${DATA:-}" || -z "${TASKS:-}" ]] || die "set only one of DATA and TASKS"
PYTHON=${PYTHON:-python}
if [[ -z "${DEVICE:-}" ]]; then
    DEVICE=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
if [[ -z "${DTYPE:-}" ]]; then
    if [[ "$DEVICE" == cuda* ]]; then DTYPE=bfloat16; else DTYPE=float32; fi
fi

args=(--out "$OUT" --limit "${LIMIT:-32}" --device "$DEVICE" --dtype "$DTYPE")
read -r -a checkpoints <<<"$CHECKPOINTS"
for checkpoint in "${checkpoints[@]}"; do
    args+=(--checkpoint "$checkpoint")
done
if [[ -n "${DATA:-}" ]]; then
    args+=(--data "$DATA")
    [[ -z "${IMAGE_FOLDER:-}" ]] || args+=(--image-folder "$IMAGE_FOLDER")
else
    args+=(--tasks "$TASKS")
    [[ -z "${INCLUDE_PATH:-}" ]] || args+=(--include-path "$INCLUDE_PATH")
fi
[[ -z "${METRICS:-}" ]] || args+=(--metrics "$METRICS")

echo "[llava-ovm analysis] $PYTHON -m llava.analysis ${args[*]} $*" >&2
"$PYTHON" -m llava.analysis "${args[@]}" "$@"
