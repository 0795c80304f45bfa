#!/usr/bin/env bash
# GPT-judged benchmarks, first pass: answers only (--predict_only), no judge, no network needed:
#   CKPT=outputs/grid_manager/stage2 bash scripts/eval/predict_judged.sh [lmms-eval args...]
# Score them later with score_judged.sh on a machine that reaches the judge. Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# mmvet, dc100_en, llava_wilder_small and live_bench_2409 build an OpenAI client when lmms-eval imports them and
# fail without a key; --predict_only never calls the judge, so a placeholder is enough for this pass.
export OPENAI_API_KEY=${OPENAI_API_KEY:-predict-only-placeholder}
tasks=$(benchmark_tasks --judged)
run_lmms_eval "$OUT/judged_predict" "$tasks" --predict_only "$@"
note "answers saved under $OUT/judged_predict; score them with scripts/eval/score_judged.sh"
