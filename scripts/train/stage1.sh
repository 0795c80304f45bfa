#!/usr/bin/env bash
# Stage 1 (language-image alignment, LCS-558K): train the projector (and the managers of manager variants) on top
# of a frozen SigLIP tower and a frozen LLM. Saves $STAGE1_DIR/mm_adapter.safetensors + config.json.
#
#   VARIANT=baseline LLM=/models/Qwen2-0.5B-Instruct VISION_TOWER=/models/siglip-so400m-patch14-384 \
#   DATA_STAGE1=/data/LLaVA-Pretrain/blip_558k_plain.json IMAGE_FOLDER=/data/LLaVA-Pretrain/images \
#   bash scripts/train/stage1.sh [extra llava.train.train flags]
#
# The hyper-parameters are the stage1 recipe (python -m llava.train.recipes show stage1 --variant baseline); LR_STAGE1,
# MANAGER_LR_STAGE1, BS_STAGE1, GA_STAGE1, MAX_LEN_STAGE1 and SAVE_STEPS_STAGE1 override it.
#
# Every check (variables, paths, devices, nodes, the previous stage's output) runs before training starts, in
# python -m llava.train.launch (docs/training.md lists the environment it reads). Arguments after the script's name
# go to python -m llava.train.train after the recipe's values, so they win. DRY_RUN=1 prints the run config and the
# command instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m llava.train.launch stage1 "$@"
