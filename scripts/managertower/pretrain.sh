#!/usr/bin/env bash
# Vision-language pre-training of MODEL with MLM + ITM on COCO, VG, SBU and CC (Table IX; python
# managertower/train/recipes.py show pretrain), from the raw experts. Its backbone/ is what fine-tuning starts from.
#
#   MODEL=managertower DATA_ROOT=/data/arrow TEXT_EXPERT=roberta-base/ VISION_EXPERT=ViT-B-16.pt \
#   bash scripts/managertower/pretrain.sh [extra flags]
#
# Environment: see common.sh.
set -euo pipefail
# shellcheck source=scripts/managertower/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe pretrain "$@"
