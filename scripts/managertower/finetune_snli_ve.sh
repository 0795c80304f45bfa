#!/usr/bin/env bash
# Fine-tune MODEL on snli_ve with the paper's recipe (Table XIV; python managertower/train/recipes.py show snli_ve), from its
# pre-trained backbone, and evaluate it into results.json.
#
#   MODEL=managertower DATA_ROOT=/data/arrow bash scripts/managertower/finetune_snli_ve.sh [extra flags]
#
# Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/managertower/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe snli_ve "$@"
