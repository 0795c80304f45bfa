#!/usr/bin/env bash
# LLaVA-NeXT's OneVision mid stage (scripts/train/direct_finetune_siglip_a4.sh), as a user runs it against this
# repository: the upstream flags, entry path and DeepSpeed path, with only paths, the step count and the process
# count changed. It starts from the plain LLM plus stage 1's mm_projector.bin, as upstream does. The anyres
# pinpoints are upstream's five grids (1x2, 2x1, 2x2, 3x1, 1x3) in units of the tiny tower's crop instead of 384 px.
set -euo pipefail
: "${LLM:?the tiny Qwen2 directory}" "${VISION_TOWER:?the tiny SigLIP directory}" "${DATA:?stage json}"
: "${IMAGE_FOLDER:?image folder}" "${OUTPUT:?output directory}" "${STAGE1:?the stage-1 output directory}"
: "${CROP:?the image size of the tiny tower}"
NUM_GPUS=${NUM_GPUS:-1}
MAX_STEPS=${MAX_STEPS:-2}
PINPOINTS="[($CROP, $((2 * CROP))), ($((2 * CROP)), $CROP), ($((2 * CROP)), $((2 * CROP))), ($((3 * CROP)), $CROP), ($CROP, $((3 * CROP)))]"

torchrun --nproc_per_node="$NUM_GPUS" --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 \
    --master_port="${MASTER_PORT:-29531}" \
    llava/train/train_mem.py \
    --deepspeed scripts/zero3.json \
    --model_name_or_path "$LLM" \
    --version qwen_1_5 \
    --data_path "$DATA" \
    --image_folder "$IMAGE_FOLDER" \
    --pretrain_mm_mlp_adapter="$STAGE1/mm_projector.bin" \
    --mm_tunable_parts="mm_vision_tower,mm_mlp_adapter,mm_language_model" \
    --mm_vision_tower_lr=2e-6 \
    --vision_tower "$VISION_TOWER" \
    --mm_projector_type mlp2x_gelu \
    --mm_vision_select_layer -2 \
    --mm_use_im_start_end False \
    --mm_use_im_patch_token False \
    --group_by_modality_length True \
    --image_aspect_ratio anyres \
    --image_grid_pinpoints "$PINPOINTS" \
    --mm_patch_merge_type spatial_unpad \
    --bf16 True \
    --run_name tiny-direct-finetune \
    --output_dir "$OUTPUT" \
    --num_train_epochs 1 \
    --max_steps "$MAX_STEPS" \
    --per_device_train_batch_size 4 \
    --per_device_eval_batch_size 4 \
    --gradient_accumulation_steps 1 \
    --evaluation_strategy "no" \
    --save_strategy "steps" \
    --save_steps 3000 \
    --save_total_limit 1 \
    --learning_rate 1e-5 \
    --weight_decay 0. \
    --warmup_ratio 0.03 \
    --lr_scheduler_type "cosine" \
    --logging_steps 1 \
    --tf32 True \
    --model_max_length 32768 \
    --gradient_checkpointing True \
    --dataloader_num_workers 16 \
    --lazy_preprocess True \
    --report_to wandb \
    --torch_compile True \
    --torch_compile_backend "inductor" \
    --dataloader_drop_last True \
    --attn_implementation sdpa \
    "$@"
