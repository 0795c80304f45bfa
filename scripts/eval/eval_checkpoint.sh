#!/usr/bin/env bash
# Rule-scored benchmarks of Table X (13 lmms-eval tasks, no judge) for one checkpoint:
#   CKPT=outputs/grid_manager/stage2 bash scripts/eval/eval_checkpoint.sh [lmms-eval args...]
# Results: $OUT/offline/<model>/<date>_results.json. Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

tasks=$(benchmark_tasks --offline)
run_lmms_eval "$OUT/offline" "$tasks" "$@"
note "done: $OUT/offline"
