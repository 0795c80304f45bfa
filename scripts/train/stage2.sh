#!/usr/bin/env bash
# Stage 2 (single-image instruction tuning, LLaVA-OneVision's 3.2M "si" mixture): the whole model trains,
# starting from the stage-1.5 checkpoint. Saves the full model and tokenizer into $STAGE2_DIR.
#
#   VARIANT=grid_manager DATA_STAGE2=/data/single_image.yaml IMAGE_FOLDER=/data/images \
#   bash scripts/train/stage2.sh [extra flags]
#
# Needs the finished stage 1.5 output: $STAGE1_5_DIR/config.json, weights, tokenizer and the COMPLETE marker
# (REQUIRE_COMPLETE=0 to start from a checkpoint trained elsewhere).
# The hyper-parameters are the stage2 recipe (python -m llava.train.recipes show stage2 --variant grid);
# LR_STAGE2, VISION_LR_STAGE2, MANAGER_LR_STAGE2, BS_STAGE2, GA_STAGE2, MAX_LEN_STAGE2, PINPOINTS_STAGE2 (grid
# variants) and SAVE_STEPS override it. Shared: see common.sh.
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
folder_args=()
if [[ -n "$IMAGE_FOLDER_STAGE2" ]]; then
    folder_args=(--image_folder "$IMAGE_FOLDER_STAGE2")
fi

launch 2 "$STAGE2_DIR" \
    --model_name_or_path "$STAGE1_5_DIR" \
    --data_path "$DATA_STAGE2" \
    "${folder_args[@]}" \
    --output_dir "$STAGE2_DIR" \
    --run_name "$RUN_NAME_PREFIX-$VARIANT-stage2" \
    "${RECIPE_ARGS[@]}" \
    "${MACHINE_ARGS[@]}" \
    "$@"
