#!/usr/bin/env bash
# Stage 1 (language-image alignment, LCS-558K): train the projector (and the managers of manager variants) on top
# of a frozen SigLIP tower and a frozen LLM. Saves $STAGE1_DIR/mm_adapter.safetensors + config.json.
#
#   VARIANT=baseline LLM=/models/Qwen2-0.5B-Instruct VISION_TOWER=/models/siglip-so400m-patch14-384 \
#   DATA_STAGE1=/data/LLaVA-Pretrain/blip_558k_plain.json IMAGE_FOLDER=/data/LLaVA-Pretrain/images \
#   bash scripts/train/stage1.sh [extra llava.train.train flags]
#
# Stage variables (defaults): LR_STAGE1 (1e-3), MANAGER_LR_STAGE1 (= LR_STAGE1), BS_STAGE1 (16 per device),
# GA_STAGE1 (1), MAX_LEN_STAGE1 (8192), SAVE_STEPS_STAGE1 (2000). Shared ones: see common.sh.
set -euo pipefail
# shellcheck source=scripts/train/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_stage1_env
IMAGE_FOLDER_STAGE1=$(image_folder_for STAGE1 DATA_STAGE1)
LR_STAGE1=${LR_STAGE1:-1e-3}
MANAGER_LR_STAGE1=${MANAGER_LR_STAGE1:-$LR_STAGE1}
BS_STAGE1=${BS_STAGE1:-16}
GA_STAGE1=${GA_STAGE1:-1}
MAX_LEN_STAGE1=${MAX_LEN_STAGE1:-8192}

manager_args "$MANAGER_LR_STAGE1"
folder_args=()
if [[ -n "$IMAGE_FOLDER_STAGE1" ]]; then
    folder_args=(--image_folder "$IMAGE_FOLDER_STAGE1")
fi

launch 1 "$STAGE1_DIR" "$BS_STAGE1" "$GA_STAGE1" \
    --model_name_or_path "$LLM" \
    --vision_tower "$VISION_TOWER" \
    --version plain \
    --data_path "$DATA_STAGE1" \
    "${folder_args[@]}" \
    --mm_tunable_parts "$(tunable_parts mm_mlp_adapter)" \
    --image_aspect_ratio square \
    --mm_patch_merge_type flat \
    "${MANAGER_ARGS[@]}" \
    --learning_rate "$LR_STAGE1" \
    --per_device_train_batch_size "$BS_STAGE1" \
    --gradient_accumulation_steps "$GA_STAGE1" \
    --model_max_length "$MAX_LEN_STAGE1" \
    --save_steps "$SAVE_STEPS_STAGE1" \
    --output_dir "$STAGE1_DIR" \
    --run_name "$RUN_NAME_PREFIX-$VARIANT-stage1" \
    "${COMMON_ARGS[@]}" \
    "$@"
