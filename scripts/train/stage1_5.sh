#!/usr/bin/env bash
# Stage 1.5 (high-quality knowledge, LLaVA-OneVision's 4M "mid stage" mixture): the whole model trains, starting
# from the plain LLM + SigLIP + the stage-1 adapter. Saves the full model and tokenizer into $STAGE1_5_DIR.
#
#   VARIANT=grid_manager LLM=/models/Qwen2-0.5B-Instruct VISION_TOWER=/models/siglip-so400m-patch14-384 \
#   DATA_STAGE1_5=/data/mid_stage.yaml IMAGE_FOLDER=/data/images bash scripts/train/stage1_5.sh [extra flags]
#
# Needs the finished stage 1 output: $STAGE1_DIR/mm_adapter.safetensors, config.json and the COMPLETE marker (set
# STAGE1_ADAPTER to start from another adapter file, e.g. LLaVA-NeXT's mm_projector.bin, with or without a stage-1
# config.json beside it; no marker is required then).
# The hyper-parameters are the stage1_5 recipe (python -m llava.train.recipes show stage1_5 --variant grid);
# LR_STAGE1_5, VISION_LR_STAGE1_5, MANAGER_LR_STAGE1_5, BS_STAGE1_5, GA_STAGE1_5, MAX_LEN_STAGE1_5,
# PINPOINTS_STAGE1_5 (grid variants) and SAVE_STEPS override it. Shared: see common.sh.
set -euo pipefail
# shellcheck source=scripts/train/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_stage1_5_env
if [[ -z "${STAGE1_ADAPTER:-}" ]]; then
    require_complete "$STAGE1_DIR" "the stage 1 output" "run stage1.sh for VARIANT=$VARIANT first, or set STAGE1_DIR / STAGE1_ADAPTER"
    STAGE1_ADAPTER=$STAGE1_DIR/mm_adapter.safetensors
fi
[[ -f "$STAGE1_ADAPTER" ]] || die "stage 1 output missing: $STAGE1_ADAPTER does not exist (run stage1.sh for VARIANT=$VARIANT first, or set STAGE1_DIR / STAGE1_ADAPTER)"
if [[ ! -f "$(dirname "$STAGE1_ADAPTER")/config.json" ]]; then
    # A LLaVA-NeXT mm_projector.bin may come alone: this script's flags say everything the adapter's config would.
    note "no config.json beside $STAGE1_ADAPTER: the multimodal settings come from this script's flags alone"
fi

IMAGE_FOLDER_STAGE1_5=$(image_folder_for STAGE1_5 DATA_STAGE1_5)
folder_args=()
if [[ -n "$IMAGE_FOLDER_STAGE1_5" ]]; then
    folder_args=(--image_folder "$IMAGE_FOLDER_STAGE1_5")
fi

launch 1.5 "$STAGE1_5_DIR" \
    --model_name_or_path "$LLM" \
    --vision_tower "$VISION_TOWER" \
    --pretrain_mm_mlp_adapter "$STAGE1_ADAPTER" \
    --data_path "$DATA_STAGE1_5" \
    "${folder_args[@]}" \
    --output_dir "$STAGE1_5_DIR" \
    --run_name "$RUN_NAME_PREFIX-$VARIANT-stage1_5" \
    "${RECIPE_ARGS[@]}" \
    "${MACHINE_ARGS[@]}" \
    "$@"
