#!/usr/bin/env bash
# Fine-tune MODEL on f30k with the paper's recipe (Table XIV; python managertower/train/recipes.py show f30k), from its
# pre-trained backbone, and evaluate it into results.json.
#
#   MODEL=managertower DATA_ROOT=/data/arrow bash scripts/managertower/finetune_f30k.sh [extra flags]
#
# Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/managertower/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe f30k "$@"
