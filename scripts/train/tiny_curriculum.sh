#!/usr/bin/env bash
# The whole curriculum on a laptop CPU: tiny random-weight Qwen2 and SigLIP checkpoints and generated LLaVA data
# (python -m llava.testing.synthetic), 2 processes on CPU (gloo) under DeepSpeed ZeRO-3, fp32, a few steps per
# stage. Checks the plumbing (flags, stage hand-over, saving, managers, anyres), not the model quality.
#
#   PYTHON=.venv/bin/python VARIANT=grid_manager bash scripts/train/tiny_curriculum.sh [extra flags for every stage]
#
# WORK (default: a new temporary directory) holds the generated checkpoints and data and, under runs/, the
# stage outputs; running again with the same WORK resumes the stages from their checkpoints.
# Defaults below can be overridden from the environment (MAX_STEPS, NUM_GPUS, DEEPSPEED, MANAGER_INJECT, ...).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

export PYTHON=${PYTHON:-python}
export VARIANT=${VARIANT:-grid_manager}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/llava-tiny-curriculum.XXXXXX")}
export WORK
MAX_STEPS=${MAX_STEPS:-4}

# Offline, CPU, 2 processes on 2 cores; DeepSpeed's JIT-built ops are cached across runs.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export LLAVA_OVM_CACHE=${LLAVA_OVM_CACHE:-$repo/.cache}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$repo/.cache/torch_extensions}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

if [[ ! -f "$WORK/qwen2-tiny/config.json" ]]; then
    "$PYTHON" -m llava.testing.synthetic "$WORK" --count "${TINY_COUNT:-32}"
fi

export LLM=$WORK/qwen2-tiny
export VISION_TOWER=$WORK/siglip-tiny
export DATA_STAGE1=$WORK/data/stage1.json
export DATA_STAGE1_5=$WORK/data/stage1_5.json
export DATA_STAGE2=$WORK/data/stage2.yaml
export IMAGE_FOLDER=$WORK/data
export OUTPUT_ROOT=${OUTPUT_ROOT:-$WORK/runs}

export NUM_GPUS=${NUM_GPUS:-2}
export MASTER_PORT=${MASTER_PORT:-29517}
export DEEPSPEED=${DEEPSPEED:-$here/../zero3.json}
export PRECISION=${PRECISION:-fp32}
export ATTN=${ATTN:-sdpa}
export REPORT_TO=${REPORT_TO:-none}
export NUM_WORKERS=${NUM_WORKERS:-0}
export SAVE_STEPS=${SAVE_STEPS:-2} SAVE_STEPS_STAGE1=${SAVE_STEPS_STAGE1:-2}
# The tiny LLM has 4 decoder layers and the tiny tower keeps 4 of its 5 layers (experts: top half, 3 and 4).
export MANAGER_INJECT=${MANAGER_INJECT:-count:2}
export BS_STAGE1=${BS_STAGE1:-4} GA_STAGE1=${GA_STAGE1:-1}
export BS_STAGE1_5=${BS_STAGE1_5:-2} GA_STAGE1_5=${GA_STAGE1_5:-1}
export BS_STAGE2=${BS_STAGE2:-1} GA_STAGE2=${GA_STAGE2:-2}
# Grids of up to 3x3 crops in stage 1.5 (the recipe's are LLaVA-OneVision's five mid-stage grids): more tokens per image.
export PINPOINTS_STAGE1_5=${PINPOINTS_STAGE1_5:-"(1x1),...,(3x3)"}
export PINPOINTS_STAGE2=${PINPOINTS_STAGE2:-"(1x1),...,(6x6)"}

echo "[llava-ovm] tiny curriculum, variant $VARIANT, work dir $WORK" >&2
bash "$here/curriculum.sh" --max_steps "$MAX_STEPS" "$@"
