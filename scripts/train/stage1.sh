#!/usr/bin/env bash
# Stage 1 (language-image alignment, LCS-558K): train the projector (and the managers of manager variants) on top
# of a frozen SigLIP tower and a frozen LLM. Saves $STAGE1_DIR/mm_adapter.safetensors + config.json.
#
#   VARIANT=baseline LLM=/models/Qwen2-0.5B-Instruct VISION_TOWER=/models/siglip-so400m-patch14-384 \
#   DATA_STAGE1=/data/LLaVA-Pretrain/blip_558k_plain.json IMAGE_FOLDER=/data/LLaVA-Pretrain/images \
#   bash scripts/train/stage1.sh [extra llava.train.train flags]
#
# The hyper-parameters are the stage1 recipe (python -m llava.train.recipes show stage1 --variant baseline); LR_STAGE1,
# MANAGER_LR_STAGE1, BS_STAGE1, GA_STAGE1, MAX_LEN_STAGE1 and SAVE_STEPS_STAGE1 override it. Shared: see common.sh.
set -euo pipefail
# shellcheck source=scripts/train/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_stage1_env
IMAGE_FOLDER_STAGE1=$(image_folder_for STAGE1 DATA_STAGE1)
folder_args=()
if [[ -n "$IMAGE_FOLDER_STAGE1" ]]; then
    folder_args=(--image_folder "$IMAGE_FOLDER_STAGE1")
fi

launch 1 "$STAGE1_DIR" \
    --model_name_or_path "$LLM" \
    --vision_tower "$VISION_TOWER" \
    --data_path "$DATA_STAGE1" \
    "${folder_args[@]}" \
    --output_dir "$STAGE1_DIR" \
    --run_name "$RUN_NAME_PREFIX-$VARIANT-stage1" \
    "${RECIPE_ARGS[@]}" \
    "${MACHINE_ARGS[@]}" \
    "$@"
