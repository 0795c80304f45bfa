#!/usr/bin/env bash
# The paper's ablations without VLP: VQAv2 and Flickr30K fine-tuned from the raw experts for every row of
# Table I (manager types and queries), Table II (L_C) or Fig. 6 (N), then the report of all results.
#
#   ABLATION=table1 DATA_ROOT=/data/arrow TEXT_EXPERT=... VISION_EXPERT=... bash scripts/managertower/ablation.sh
#
#   ABLATION   table1 | table2 | fig6                                                              (required)
#   ROWS       a space-separated subset of the ablation's presets (default: all, from managertower/presets.py)
#   TASKS      a subset of "vqa_novlp f30k_novlp"                                          (default: both)
# Environment: see common.sh (MODEL is set per row). Extra flags go to every run.
set -euo pipefail
# shellcheck source=scripts/managertower/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require ABLATION "table1, table2 or fig6"
[[ "$ABLATION" =~ ^(table1|table2|fig6)$ ]] || die "ABLATION=$ABLATION is not one of table1, table2, fig6"
if [[ -z "${ROWS:-}" ]]; then
    ROWS=$("$PYTHON" -c 'import sys; from managertower.presets import PRESETS
print(" ".join(k for k in PRESETS if k.startswith(sys.argv[1] + "/")))' "$ABLATION")
fi
TASKS=${TASKS:-vqa_novlp f30k_novlp}
read -r -a rows <<<"$ROWS"
read -r -a tasks <<<"$TASKS"
# Every name checked before the first run: a typo must not surface hours into the ablation.
for task in "${tasks[@]}"; do
    [[ "$task" =~ ^(vqa_novlp|f30k_novlp)$ ]] || die "TASKS: $task is not vqa_novlp or f30k_novlp"
done
"$PYTHON" -c 'import sys; from managertower.presets import PRESETS
bad = [r for r in sys.argv[1:] if r not in PRESETS]
sys.exit(f"ROWS: {bad} are not presets (managertower/presets.py)" if bad else 0)' "${rows[@]}" || die "see above"
for row in "${rows[@]}"; do
    for task in "${tasks[@]}"; do
        MODEL=$row
        MODEL_DIR=${MODEL//\//_}
        run_recipe "$task" "$@"
    done
done
if [[ "$DRY_RUN" != 1 ]]; then
    "$PYTHON" -m managertower.report "$OUTPUT_ROOT" --out "$OUTPUT_ROOT/report"
fi
