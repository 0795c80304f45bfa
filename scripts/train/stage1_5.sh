#!/usr/bin/env bash
# Stage 1.5 (high-quality knowledge, LLaVA-OneVision's 4M "mid stage" mixture): the whole model trains, starting
# from the plain LLM + SigLIP + the stage-1 adapter. Saves the full model and tokenizer into $STAGE1_5_DIR.
#
#   VARIANT=grid_manager LLM=/models/Qwen2-0.5B-Instruct VISION_TOWER=/models/siglip-so400m-patch14-384 \
#   DATA_STAGE1_5=/data/mid_stage.yaml IMAGE_FOLDER=/data/images bash scripts/train/stage1_5.sh [extra flags]
#
# Needs the finished stage 1 output: $STAGE1_DIR/mm_adapter.safetensors, config.json and the COMPLETE marker (set
# STAGE1_ADAPTER to start from another adapter file, e.g. LLaVA-NeXT's mm_projector.bin, with or without a stage-1
# config.json beside it; no marker is required then). The hyper-parameters are the stage1_5 recipe
# (python -m llava.train.recipes show stage1_5 --variant grid); LR_STAGE1_5, VISION_LR_STAGE1_5, MANAGER_LR_STAGE1_5,
# BS_STAGE1_5, GA_STAGE1_5, MAX_LEN_STAGE1_5, PINPOINTS_STAGE1_5 (grid variants) and SAVE_STEPS override it.
#
# Every check (variables, paths, devices, nodes, the previous stage's output) runs before training starts, in
# python -m llava.train.launch (docs/training.md lists the environment it reads). Arguments after the script's name
# go to python -m llava.train.train after the recipe's values, so they win. DRY_RUN=1 prints the run config and the
# command instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m llava.train.launch stage1_5 "$@"
