#!/usr/bin/env bash
# Fine-tune MODEL on nlvr2 with the paper's recipe (Table XIV; python managertower/train/recipes.py show nlvr2), from its
# pre-trained backbone, and evaluate it into results.json.
#
#   MODEL=managertower DATA_ROOT=/data/arrow bash scripts/managertower/finetune_nlvr2.sh [extra flags]
#
# Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/managertower/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe nlvr2 "$@"
