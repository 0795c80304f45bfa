#!/usr/bin/env bash
# Tables XI-XIII for the four variants trained by scripts/train/curriculum.sh:
#   OUTPUT_ROOT=outputs bash scripts/eval/report.sh [extra --variant NAME=PATH ...]
# Reads $OUTPUT_ROOT/<variant>/stage2/eval (offline + judged_scored; *.json score files there too) and writes
# $REPORT_DIR (default: $OUTPUT_ROOT/report): report.md, scores.csv, categories.csv, report.png.
set -euo pipefail

PYTHON=${PYTHON:-python}
OUTPUT_ROOT=${OUTPUT_ROOT:-outputs}
REPORT_DIR=${REPORT_DIR:-$OUTPUT_ROOT/report}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# One line per variant of llava/variants.py (run by path: no torch import): key, grid, manager, label.
listing=$("$PYTHON" "$here/../../llava/variants.py" variants)
args=()
while read -r variant _ _ label; do
    eval_dir="$OUTPUT_ROOT/$variant/stage2/eval"
    if [[ -d "$eval_dir" ]]; then
        args+=(--variant "$label=$eval_dir")
    else
        echo "[llava-ovm eval] no results for $variant ($eval_dir): left out of the report" >&2
    fi
done <<<"$listing"
(( ${#args[@]} > 0 || $# > 0 )) || { echo "error: no results under $OUTPUT_ROOT/*/stage2/eval" >&2; exit 1; }
"$PYTHON" -m llava.eval.report "${args[@]}" "$@" --out "$REPORT_DIR"
