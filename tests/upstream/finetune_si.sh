#!/usr/bin/env bash
# LLaVA-NeXT's OneVision single-image stage (scripts/train/finetune_si.sh), as a user runs it against this
# repository: the upstream flags (torch.compile with inductor, flash_attention_2 by default, bf16, tf32, video
# flags), entry path and DeepSpeed path, with only paths, the step count and the process count changed.
set -euo pipefail
: "${PREV_STAGE_CHECKPOINT:?the output of the previous stage}" "${VISION_TOWER:?the tiny SigLIP directory}"
: "${DATA:?stage yaml or json}" "${IMAGE_FOLDER:?image folder}" "${OUTPUT:?output directory}"
NUM_GPUS=${NUM_GPUS:-1}
MAX_STEPS=${MAX_STEPS:-2}

torchrun --nproc_per_node="$NUM_GPUS" --nnodes=1 --node_rank=0 --master_addr=127.0.0.1 \
    --master_port="${MASTER_PORT:-29532}" \
    llava/train/train_mem.py \
    --deepspeed scripts/zero3.json \
    --model_name_or_path "$PREV_STAGE_CHECKPOINT" \
    --version qwen_1_5 \
    --data_path "$DATA" \
    --image_folder "$IMAGE_FOLDER" \
    --video_folder "$IMAGE_FOLDER" \
    --mm_tunable_parts="mm_vision_tower,mm_mlp_adapter,mm_language_model" \
    --mm_vision_tower_lr=2e-6 \
    --vision_tower "$VISION_TOWER" \
    --mm_projector_type mlp2x_gelu \
    --mm_vision_select_layer -2 \
    --mm_use_im_start_end False \
    --mm_use_im_patch_token False \
    --group_by_modality_length True \
    --image_aspect_ratio anyres_max_9 \
    --image_grid_pinpoints "(1x1),...,(6x6)" \
    --mm_patch_merge_type spatial_unpad \
    --bf16 True \
    --run_name tiny-finetune-si \
    --output_dir "$OUTPUT" \
    --num_train_epochs 1 \
    --max_steps "$MAX_STEPS" \
    --per_device_train_batch_size 1 \
    --per_device_eval_batch_size 4 \
    --gradient_accumulation_steps 2 \
    --evaluation_strategy "no" \
    --save_strategy "steps" \
    --save_steps 1000 \
    --save_total_limit 1 \
    --learning_rate 1e-5 \
    --weight_decay 0. \
    --warmup_ratio 0.03 \
    --lr_scheduler_type "cosine" \
    --logging_steps 1 \
    --tf32 True \
    --model_max_length 32768 \
    --gradient_checkpointing True \
    --dataloader_num_workers 4 \
    --lazy_preprocess True \
    --report_to wandb \
    --torch_compile True \
    --torch_compile_backend "inductor" \
    --dataloader_drop_last True \
    --frames_upbound 32 \
    "$@"
