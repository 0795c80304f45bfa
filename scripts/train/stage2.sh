#!/usr/bin/env bash
# Stage 2 (single-image instruction tuning, LLaVA-OneVision's 3.2M "si" mixture): the whole model trains,
# starting from the stage-1.5 checkpoint. Saves the full model and tokenizer into $STAGE2_DIR.
#
#   VARIANT=grid_manager DATA_STAGE2=/data/single_image.yaml IMAGE_FOLDER=/data/images \
#   bash scripts/train/stage2.sh [extra flags]
#
# Needs the finished stage 1.5 output: $STAGE1_5_DIR/config.json, weights, tokenizer and the COMPLETE marker
# (REQUIRE_COMPLETE=0 to start from a checkpoint trained elsewhere).
# Stage variables (defaults): LR_STAGE2 (1e-5), VISION_LR_STAGE2 (2e-6), MANAGER_LR_STAGE2 (= LR_STAGE2),
# BS_STAGE2 (1 per device), GA_STAGE2 (2; 16 gives LLaVA-OneVision's global batch 256 on 16 GPUs),
# MAX_LEN_STAGE2 (16384), PINPOINTS_STAGE2 (grid variants; "(1x1),...,(6x6)").
set -euo pipefail
# shellcheck source=scripts/train/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_stage2_env
require_complete "$STAGE1_5_DIR" "the stage 1.5 output" "run stage1_5.sh for VARIANT=$VARIANT first, or set STAGE1_5_DIR"
[[ -f "$STAGE1_5_DIR/config.json" ]] || die "stage 1.5 output missing: $STAGE1_5_DIR/config.json does not exist (run stage1_5.sh for VARIANT=$VARIANT first, or set STAGE1_5_DIR)"
if ! compgen -G "$STAGE1_5_DIR/*.safetensors" >/dev/null && ! compgen -G "$STAGE1_5_DIR/pytorch_model*.bin" >/dev/null; then
    die "stage 1.5 output incomplete: no model weights (*.safetensors or pytorch_model*.bin) in $STAGE1_5_DIR"
fi
[[ -f "$STAGE1_5_DIR/tokenizer_config.json" ]] || die "stage 1.5 output incomplete: no tokenizer in $STAGE1_5_DIR"

IMAGE_FOLDER_STAGE2=$(image_folder_for STAGE2 DATA_STAGE2)
LR_STAGE2=${LR_STAGE2:-1e-5}
VISION_LR_STAGE2=${VISION_LR_STAGE2:-2e-6}
MANAGER_LR_STAGE2=${MANAGER_LR_STAGE2:-$LR_STAGE2}
BS_STAGE2=${BS_STAGE2:-1}
GA_STAGE2=${GA_STAGE2:-2}
MAX_LEN_STAGE2=${MAX_LEN_STAGE2:-16384}
PINPOINTS_STAGE2=${PINPOINTS_STAGE2:-"(1x1),...,(6x6)"}

if (( WITH_GRID )); then
    image_args=(--image_aspect_ratio anyres_max_9 --image_grid_pinpoints "$PINPOINTS_STAGE2")
else
    image_args=(--image_aspect_ratio pad)
fi
manager_args "$MANAGER_LR_STAGE2"
folder_args=()
if [[ -n "$IMAGE_FOLDER_STAGE2" ]]; then
    folder_args=(--image_folder "$IMAGE_FOLDER_STAGE2")
fi

launch 2 "$STAGE2_DIR" "$BS_STAGE2" "$GA_STAGE2" \
    --model_name_or_path "$STAGE1_5_DIR" \
    --version qwen_1_5 \
    --data_path "$DATA_STAGE2" \
    "${folder_args[@]}" \
    --mm_tunable_parts "$(tunable_parts mm_vision_tower,mm_mlp_adapter,mm_language_model)" \
    "${image_args[@]}" \
    --mm_patch_merge_type spatial_unpad \
    "${MANAGER_ARGS[@]}" \
    --learning_rate "$LR_STAGE2" \
    --mm_vision_tower_lr "$VISION_LR_STAGE2" \
    --per_device_train_batch_size "$BS_STAGE2" \
    --gradient_accumulation_steps "$GA_STAGE2" \
    --model_max_length "$MAX_LEN_STAGE2" \
    --group_by_modality_length True \
    --dataloader_drop_last True \
    --save_steps "$SAVE_STEPS" \
    --output_dir "$STAGE2_DIR" \
    --run_name "$RUN_NAME_PREFIX-$VARIANT-stage2" \
    "${COMMON_ARGS[@]}" \
    "$@"
