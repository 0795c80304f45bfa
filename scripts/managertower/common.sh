# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the task scripts
# Shared part of the ManagerTower scripts (pretrain.sh, finetune_*.sh, ablation.sh). Sourced, never run.
#
# Environment (docs/managertower.md, "Training"):
#   DATA_ROOT      the folder of .arrow tables (python -m managertower.data.convert)            (required)
#   MODEL          meter | bridgetower | managertower | table1/... | table2/... | fig6/...  (default: managertower)
#   MODEL_CONFIG   a ManagerTowerConfig config.json the preset is applied to    (default: the base-size config)
#   TEXT_EXPERT    RoBERTa weights, VISION_EXPERT CLIP weights: pre-training and the no-VLP recipes start from them
#                  (required there; ALLOW_RANDOM_EXPERTS=1 starts from random encoders instead, for tests)
#   INIT_FROM      fine-tuning after VLP starts from this backbone      (default: $OUTPUT_ROOT/$MODEL/pretrain/backbone)
#   TOKENIZER      a tokenizer folder or name                                                 (default: roberta-base)
#   PYTHON         interpreter with managertower, torch, transformers, deepspeed                 (default: python)
#   NUM_GPUS       processes per node                        (default: the CUDA devices visible; required on CPU)
#   NNODES         nodes (default 1); with NNODES > 1, NODE_RANK, MASTER_ADDR and MASTER_PORT are required
#   OUTPUT_ROOT    runs go to $OUTPUT_ROOT/<model>/<recipe>                 (default: <repo>/outputs/managertower)
#   DEEPSPEED      a DeepSpeed config, or "none" for DDP                          (default: scripts/zero2.json)
#   SEED           (default 0); REPORT_TO (default wandb, offline unless WANDB_MODE is set); NUM_WORKERS (default 8)
#   LR, BATCH_SIZE, PER_DEVICE, EPOCHS, MAX_STEPS, IMAGE_SIZE, WARMUP, WEIGHT_DECAY
#                  override the recipe (python managertower/train/recipes.py show vqa)
#   DRY_RUN        1 prints the command, one argument per line, instead of running it
# Arguments after a script's name go to `python -m managertower.train.train` last, so they override its flags.

set -euo pipefail

MT_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$MT_SCRIPTS/../.." && pwd)
RECIPES=$REPO_ROOT/managertower/train/recipes.py

die() {
    echo "error: $*" >&2
    exit 1
}

note() {
    echo "[managertower] $*" >&2
}

require() {
    local name=$1 hint=$2
    [[ -n "${!name:-}" ]] || die "$name is not set: $hint"
}

PYTHON=${PYTHON:-python}
MODEL=${MODEL:-managertower}
OUTPUT_ROOT=${OUTPUT_ROOT:-$REPO_ROOT/outputs/managertower}
TOKENIZER=${TOKENIZER:-roberta-base}
DEEPSPEED=${DEEPSPEED:-$REPO_ROOT/scripts/zero2.json}
SEED=${SEED:-0}
NUM_WORKERS=${NUM_WORKERS:-8}
REPORT_TO=${REPORT_TO:-wandb}
NNODES=${NNODES:-1}
DRY_RUN=${DRY_RUN:-0}
export WANDB_MODE=${WANDB_MODE:-offline} WANDB_PROJECT=${WANDB_PROJECT:-managertower}

require DATA_ROOT "the folder of .arrow tables (python -m managertower.data.convert ...)"
[[ -d "$DATA_ROOT" ]] || die "DATA_ROOT=$DATA_ROOT is not a directory"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "SEED=$SEED must be a non-negative integer"
if [[ -z "${NUM_GPUS:-}" ]]; then
    NUM_GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
    [[ "$NUM_GPUS" -gt 0 ]] || die "NUM_GPUS is not set and no CUDA device is visible: set NUM_GPUS (processes) on a CPU"
fi
[[ "$NUM_GPUS" =~ ^[1-9][0-9]*$ ]] || die "NUM_GPUS=$NUM_GPUS must be a positive integer"
if (( NNODES > 1 )); then
    NODE_RANK=${NODE_RANK:-${RANK:-}}
    require NODE_RANK "this node's rank (0..NNODES-1)"
    require MASTER_ADDR "the address of node 0"
    require MASTER_PORT "a free port on node 0"
fi
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
# The run folder of a model: its preset name with "/" spelled "_" (table1/aaum-fused -> table1_aaum-fused).
MODEL_DIR=${MODEL//\//_}

# recipe_args RECIPE: RECIPE_ARGS = the recipe's flags for NUM_GPUS x NNODES processes, the overrides applied.
recipe_args() {
    local name=$1 listing
    local overrides=()
    local pair
    for pair in LR:--lr BATCH_SIZE:--batch-size PER_DEVICE:--per-device EPOCHS:--epochs MAX_STEPS:--max-steps \
        IMAGE_SIZE:--image-size WARMUP:--warmup WEIGHT_DECAY:--weight-decay; do
        local var=${pair%%:*} flag=${pair#*:}
        if [[ -n "${!var:-}" ]]; then
            overrides+=("$flag" "${!var}")
        fi
    done
    listing=$("$PYTHON" "$RECIPES" args "$name" --world-size $((NUM_GPUS * NNODES)) "${overrides[@]}") \
        || die "recipe $name: see the message above"
    mapfile -t RECIPE_ARGS <<<"$listing"
}

# recipe_field RECIPE FIELD: one field of the recipe (python managertower/train/recipes.py show RECIPE).
recipe_field() {
    "$PYTHON" "$RECIPES" show "$1" | sed -n "s/^$2=//p"
}

# model_args RECIPE: MODEL_ARGS = where the weights come from: the pre-trained backbone (fine-tuning after VLP), or
# the preset on the raw experts (pre-training, no-VLP recipes).
model_args() {
    local name=$1 vlp
    vlp=$(recipe_field "$name" vlp) || die "recipe $name: see the message above"
    if [[ "$vlp" == "True" && "$name" != pretrain ]]; then
        INIT_FROM=${INIT_FROM:-$OUTPUT_ROOT/$MODEL_DIR/pretrain/backbone}
        [[ -f "$INIT_FROM/config.json" ]] || die "INIT_FROM=$INIT_FROM has no config.json: pre-train MODEL=$MODEL first (pretrain.sh), or set INIT_FROM"
        [[ -f "$INIT_FROM/../COMPLETE" || -f "$INIT_FROM/COMPLETE" ]] || die "INIT_FROM=$INIT_FROM: its run has no COMPLETE marker (unfinished)"
        MODEL_ARGS=(--init_from "$INIT_FROM")
        return
    fi
    MODEL_ARGS=(--preset "$MODEL")
    [[ -n "${MODEL_CONFIG:-}" ]] && MODEL_ARGS+=(--model_config "$MODEL_CONFIG")
    local expert
    for expert in TEXT_EXPERT:--text_expert VISION_EXPERT:--vision_expert; do
        local var=${expert%%:*} flag=${expert#*:}
        if [[ -n "${!var:-}" ]]; then
            [[ -e "${!var}" ]] || die "$var=${!var} does not exist"
            MODEL_ARGS+=("$flag" "${!var}")
        elif [[ "${ALLOW_RANDOM_EXPERTS:-0}" == 1 ]]; then
            note "$var is not set: that encoder starts from random weights (ALLOW_RANDOM_EXPERTS=1)"
        else
            die "$var is not set: recipe $name starts from the pre-trained experts (RoBERTa, CLIP); ALLOW_RANDOM_EXPERTS=1 starts from random encoders"
        fi
    done
}

# run_recipe RECIPE [extra flags]: train (and, for fine-tuning, evaluate) MODEL with RECIPE.
run_recipe() {
    local name=$1
    shift
    recipe_args "$name"
    model_args "$name"
    local out=$OUTPUT_ROOT/$MODEL_DIR/$name
    local eval_args=()
    [[ "$name" != pretrain ]] && eval_args=(--do_eval True --results_name "$MODEL")
    local ds_args=()
    [[ "$DEEPSPEED" != none ]] && ds_args=(--deepspeed "$DEEPSPEED")
    local cmd=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NUM_GPUS" --nnodes "$NNODES"
        --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT"
        -m managertower.train.train --data_root "$DATA_ROOT" --tokenizer "$TOKENIZER" "${MODEL_ARGS[@]}"
        "${RECIPE_ARGS[@]}" "${eval_args[@]}" "${ds_args[@]}" --output_dir "$out" --seed "$SEED"
        --run_name "$MODEL_DIR-$name-seed$SEED" --report_to "$REPORT_TO" --dataloader_num_workers "$NUM_WORKERS"
        --save_strategy epoch --logging_steps 50 "$@")
    if [[ "$DRY_RUN" == 1 ]]; then
        printf '%s\n' "${cmd[@]}"
        return
    fi
    note "$MODEL $name -> $out"
    WANDB_DIR=${WANDB_DIR:-$out} "${cmd[@]}"
}
