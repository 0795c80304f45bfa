#!/usr/bin/env bash
# GPT-judged benchmarks, second pass: replays the answers of predict_judged.sh through the tasks' judges.
#   OPENAI_API_KEY=... CKPT=outputs/grid_manager/stage2 bash scripts/eval/score_judged.sh [lmms-eval args...]
# Judge settings (lmms-eval 0.7.3): MODEL_VERSION (default gpt-4o-2024-11-20), API_TYPE (openai | azure),
# OPENAI_API_URL for an OpenAI-compatible server. Needs no GPU. Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -n "${OPENAI_API_KEY:-}" && "$OPENAI_API_KEY" != predict-only-placeholder ]] \
    || die "OPENAI_API_KEY is not set: the judged tasks are scored by a GPT judge"
[[ -d "$OUT/judged_predict" ]] || die "$OUT/judged_predict does not exist: run scripts/eval/predict_judged.sh first"
tasks=$(benchmark_tasks --judged)
# Read by run_lmms_eval (common.sh): the replay model serves the first pass's answers.
MODEL=llava_ov_replay
MODEL_ARGS="samples=$OUT/judged_predict"
NUM_GPUS=1
BATCH_SIZE=1
run_lmms_eval "$OUT/judged_scored" "$tasks" "$@"
note "done: $OUT/judged_scored"
