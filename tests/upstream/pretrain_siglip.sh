#!/usr/bin/env bash
# LLaVA-NeXT's OneVision stage 1 (scripts/train/pretrain_siglip.sh), as a user runs it against this repository:
# the upstream flag set, entry path (llava/train/train_mem.py) and DeepSpeed path (scripts/zero3.json), with only
# paths, the step count and the process count changed. Like upstream it gives no --image_aspect_ratio and no
# --mm_patch_merge_type (LLaVA-NeXT's defaults, square and flat, apply). Run from the repository root.
set -euo pipefail
: "${LLM:?the tiny Qwen2 directory}" "${VISION_TOWER:?the tiny SigLIP directory}" "${DATA:?stage-1 json}"
: "${IMAGE_FOLDER:?image folder}" "${OUTPUT:?output directory}"
NUM_GPUS=${NUM_GPUS:-1}
MAX_STEPS=${MAX_STEPS:-2}

torchrun --nproc_per_node="$NUM_GPUS" --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 \
    --master_port="${MASTER_PORT:-29530}" \
    llava/train/train_mem.py \
    --deepspeed scripts/zero3.json \
    --model_name_or_path "$LLM" \
    --version plain \
    --data_path "$DATA" \
    --image_folder "$IMAGE_FOLDER" \
    --vision_tower "$VISION_TOWER" \
    --mm_tunable_parts="mm_mlp_adapter" \
    --mm_vision_select_layer -2 \
    --mm_projector_type mlp2x_gelu \
    --mm_use_im_start_end False \
    --mm_use_im_patch_token False \
    --bf16 True \
    --output_dir "$OUTPUT" \
    --num_train_epochs 1 \
    --max_steps "$MAX_STEPS" \
    --per_device_train_batch_size 16 \
    --per_device_eval_batch_size 4 \
    --gradient_accumulation_steps 1 \
    --evaluation_strategy "no" \
    --save_strategy "no" \
    --save_steps 50000 \
    --learning_rate 1e-3 \
    --weight_decay 0. \
    --warmup_ratio 0.03 \
    --lr_scheduler_type "cosine" \
    --logging_steps 1 \
    --tf32 True \
    --model_max_length 8192 \
    --gradient_checkpointing True \
    --dataloader_num_workers 16 \
    --lazy_preprocess True \
    --report_to wandb \
    --run_name tiny-pretrain-siglip \
    --attn_implementation sdpa \
    "$@"
