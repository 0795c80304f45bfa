#!/usr/bin/env bash
# Everything for one trained variant of scripts/train/curriculum.sh: the rule-scored pass, the judged answers, and
# their scoring when OPENAI_API_KEY is set (otherwise run score_judged.sh later):
#   VARIANT=grid_manager OUTPUT_ROOT=outputs bash scripts/eval/eval_variant.sh [lmms-eval args...]
# CKPT defaults to $OUTPUT_ROOT/$VARIANT/stage2; the other variables are those of common.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The variant table, llava/variants.py (stdlib-only, run by path: no torch import), says which keys exist.
"${PYTHON:-python}" "$here/../../llava/variants.py" variant "${VARIANT:-}" >/dev/null
export CKPT=${CKPT:-${OUTPUT_ROOT:-outputs}/$VARIANT/stage2}
[[ -f "$CKPT/COMPLETE" ]] || echo "[llava-ovm eval] warning: $CKPT has no COMPLETE marker (training unfinished?)" >&2

bash "$here/eval_checkpoint.sh" "$@"
bash "$here/predict_judged.sh" "$@"
if [[ -n "${OPENAI_API_KEY:-}" ]]; then
    bash "$here/score_judged.sh" "$@"
else
    echo "[llava-ovm eval] OPENAI_API_KEY not set: judged answers saved; score them with score_judged.sh" >&2
fi
