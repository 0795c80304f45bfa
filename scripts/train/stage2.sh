#!/usr/bin/env bash
# Stage 2 (single-image instruction tuning, LLaVA-OneVision's 3.2M "si" mixture): the whole model trains,
# starting from the stage-1.5 checkpoint. Saves the full model and tokenizer into $STAGE2_DIR.
#
#   VARIANT=grid_manager DATA_STAGE2=/data/single_image.yaml IMAGE_FOLDER=/data/images \
#   bash scripts/train/stage2.sh [extra flags]
#
# Needs the finished stage 1.5 output: $STAGE1_5_DIR/config.json, weights, tokenizer and the COMPLETE marker
# (REQUIRE_COMPLETE=0 to start from a checkpoint trained elsewhere). The hyper-parameters are the stage2 recipe
# (python -m llava.train.recipes show stage2 --variant grid); LR_STAGE2, VISION_LR_STAGE2, MANAGER_LR_STAGE2, BS_STAGE2,
# GA_STAGE2, MAX_LEN_STAGE2, PINPOINTS_STAGE2 (grid variants) and SAVE_STEPS override it.
#
# Every check (variables, paths, devices, nodes, the previous stage's output) runs before training starts, in
# python -m llava.train.launch (docs/training.md lists the environment it reads). Arguments after the script's name
# go to python -m llava.train.train after the recipe's values, so they win. DRY_RUN=1 prints the run config and the
# command instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m llava.train.launch stage2 "$@"
