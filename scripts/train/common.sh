# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the stage scripts
# Shared part of the LLaVA-OV-Manager stage scripts (stage1.sh, stage1_5.sh, stage2.sh, curriculum.sh).
# Sourced, never run: it checks the environment, detects the device and defines the flags every stage shares.
#
# Environment (see docs/training.md for the full table):
#   VARIANT          baseline | manager | grid | grid_manager                              (required)
#   PYTHON           interpreter with llava, torch, transformers, deepspeed installed      (default: python)
#   NUM_GPUS         processes per node                         (default: the CUDA devices visible; required on CPU)
#   NNODES           nodes (default 1). With NNODES > 1, NODE_RANK (or RANK), MASTER_ADDR and MASTER_PORT are
#                    required; single-node defaults are 0, 127.0.0.1 and 29500.
#   OUTPUT_ROOT      stage outputs go to $OUTPUT_ROOT/$VARIANT/{stage1,stage1_5,stage2}   (default: <repo>/outputs)
#   STAGE1_DIR, STAGE1_5_DIR, STAGE2_DIR   override single stage directories (e.g. share one stage 1)
#   DEEPSPEED        DeepSpeed config, or "none"                              (default: scripts/zero3.json)
#   PRECISION        auto | bf16 | fp16 | fp32     (auto: bf16 on a GPU that supports it, else fp16; fp32 on CPU)
#   ATTN             auto | flash_attention_2 | sdpa | eager   (auto: flash_attention_2 with CUDA, sdpa without)
#   COMPILE          1 adds --torch_compile True --torch_compile_backend $COMPILE_BACKEND (default: 0); the decoder
#                    and vision layers are compiled, one by one (works under ZeRO-3)
#   COMPILE_BACKEND  torch.compile backend                                                   (default: inductor)
#   REPORT_TO        wandb | tensorboard | none | ...                                            (default: wandb)
#   WANDB_MODE       exported as offline unless set; WANDB_PROJECT defaults to llava-ov-manager; WANDB_DIR to the
#                    stage's output directory
#   RUN_NAME_PREFIX  run names are $RUN_NAME_PREFIX-$VARIANT-stageX                    (default: llava-ovm)
#   NUM_WORKERS      dataloader workers per process                                                (default: 4)
#   REQUIRE_COMPLETE 0 lets a stage start from a previous-stage directory without the COMPLETE marker (default 1)
#   IMAGE_FOLDER     root of the image paths in the data (per stage: IMAGE_FOLDER_STAGE1, _STAGE1_5, _STAGE2)
#   DRY_RUN          1 prints the stage's command, one argument per line, instead of running it
#
# The hyper-parameters (LR_STAGE*, BS_STAGE*, SAVE_STEPS, MANAGER_TYPE, NUM_WORKERS, ...) are the stage recipes of
# llava/train/recipes.py; `python -m llava.train.recipes show stage2 --variant grid_manager` prints one.
# Arguments given to a stage script after its name are passed on to `python -m llava.train.train` after the
# script's own flags, so they override them (argparse keeps the last value of a repeated flag).

set -euo pipefail

if (( BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4) )); then
    echo "error: these scripts need bash >= 4.4 (found $BASH_VERSION)" >&2
    exit 1
fi

TRAIN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TRAIN_SCRIPTS/../.." && pwd)

die() {
    echo "error: $*" >&2
    exit 1
}

note() {
    echo "[llava-ovm] $*" >&2
}

# require NAME "what it should hold": fail when the variable is unset or empty.
require() {
    local name=$1 hint=$2
    [[ -n "${!name:-}" ]] || die "$name is not set: $hint"
}

# require_int NAME: the variable holds a non-negative integer.
require_int() {
    local name=$1
    [[ "${!name}" =~ ^[0-9]+$ ]] || die "$name=${!name} must be a non-negative integer"
}

# resolve_model_dir NAME "what": the variable must name a model. A local directory with a config.json is kept; a
# Hugging Face hub id (org/name) is looked up in (or downloaded into) the hub cache (llava.train.preflight snapshot),
# and the variable is set to that local snapshot: llava.train.train reads configs and weights from local directories
# only. With HF_HUB_OFFLINE=1 only the cache is consulted.
resolve_model_dir() {
    local name=$1 hint=$2 path
    require "$name" "$hint"
    [[ -f "${!name}/config.json" ]] && return 0
    if [[ -e "${!name}" || ! "${!name}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$ ]]; then
        die "$name=${!name} is neither a local model directory (no config.json) nor a hub id: $hint"
    fi
    note "$name=${!name}: resolving the hub id to a local snapshot"
    path=$("$PYTHON" -m llava.train.preflight snapshot "${!name}") || die "$name=${!name}: neither in the Hugging Face cache nor downloadable (offline?); download it and set $name to the local directory"
    [[ -f "$path/config.json" ]] || die "$name=${!name}: the snapshot $path has no config.json"
    note "$name=$path"
    printf -v "$name" '%s' "$path"
}

# require_data NAME: a data file (.json, .jsonl or a .yaml mixture) that exists. A brace list dir/{a,b}.json is
# passed through unchecked.
require_data() {
    local name=$1
    require "$name" "the training data: a LLaVA .json/.jsonl file or a .yaml mixture"
    if [[ "${!name}" != *"{"* && ! -f "${!name}" ]]; then
        die "$name=${!name}: no such file"
    fi
}

# image_folder_for STAGE DATA_VAR: prints the image folder of a stage (IMAGE_FOLDER_<STAGE>, else IMAGE_FOLDER).
# It may stay empty only for a .yaml mixture (whose entries can carry their own image_folder).
image_folder_for() {
    local stage=$1 data_var=$2 specific="IMAGE_FOLDER_$1"
    local folder=${!specific:-${IMAGE_FOLDER:-}}
    if [[ -z "$folder" ]]; then
        if [[ "${!data_var}" != *.yaml && "${!data_var}" != *.yml ]]; then
            die "IMAGE_FOLDER (or $specific) is not set: the folder that the image paths of ${!data_var} are relative to"
        fi
    elif [[ ! -d "$folder" ]]; then
        die "image folder of stage $stage: $folder is not a directory"
    fi
    echo "$folder"
}

# require_complete DIR WHAT HINT: DIR is a finished stage output, i.e. holds the COMPLETE marker that
# llava.train.train writes last. On nodes other than 0 of a multi-node run, waits up to STAGE_WAIT_S seconds
# (default 600) for node 0 to write it. REQUIRE_COMPLETE=0 accepts a directory without the marker (e.g. a checkpoint
# trained elsewhere).
require_complete() {
    local dir=$1 what=$2 hint=$3 waited=0 limit=0
    [[ "${REQUIRE_COMPLETE:-1}" == 1 ]] || return 0
    if (( NNODES > 1 && NODE_RANK > 0 )); then
        limit=${STAGE_WAIT_S:-600}
    fi
    while [[ ! -f "$dir/COMPLETE" ]] && (( waited < limit )); do
        (( waited == 0 )) && note "waiting up to $limit s for node 0 to finish $what ($dir/COMPLETE)"
        sleep 10
        waited=$((waited + 10))
    done
    [[ -d "$dir" ]] || die "$what is missing: $dir does not exist ($hint)"
    [[ -f "$dir/COMPLETE" ]] || die "$what is incomplete: $dir has no COMPLETE marker (the run was interrupted or is still running; re-run that stage to finish it, or set REQUIRE_COMPLETE=0 for a checkpoint trained elsewhere)"
}

require VARIANT "one of the variants of llava/train/recipes.py: baseline, manager, grid, grid_manager"

# -- interpreter and device ----------------------------------------------------------------------------------------

PYTHON=${PYTHON:-python}
command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON: not found (point it at the environment with llava installed)"
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

_probe=$("$PYTHON" -m llava.train.preflight probe) || die "$PYTHON cannot run llava.train.preflight (is torch installed in it?)"
read -r CUDA_COUNT CUDA_MAJOR CUDA_BF16 HAS_LLAVA HAS_DEEPSPEED HAS_WANDB <<<"$_probe"
(( HAS_LLAVA )) || die "$PYTHON cannot import llava (install the project: pip install -e '.[train]')"

# The variants and stage recipes: stdlib-only, run by path so that no torch import is paid for a table lookup.
RECIPES=$REPO_ROOT/llava/train/recipes.py
"$PYTHON" "$RECIPES" variant "$VARIANT" >/dev/null || die "VARIANT=$VARIANT is not a variant (see the line above)"

if [[ -z "${NUM_GPUS:-}" ]]; then
    (( CUDA_COUNT > 0 )) || die "NUM_GPUS is not set and no CUDA device is visible: set NUM_GPUS to the number of processes per node (CPU runs use gloo)"
    NUM_GPUS=$CUDA_COUNT
fi
require_int NUM_GPUS
(( NUM_GPUS > 0 )) || die "NUM_GPUS must be at least 1"

# -- nodes ---------------------------------------------------------------------------------------------------------

NNODES=${NNODES:-1}
require_int NNODES
(( NNODES > 0 )) || die "NNODES must be at least 1"
NODE_RANK=${NODE_RANK:-${RANK:-}}
if (( NNODES > 1 )); then
    require NODE_RANK "this node's index in 0..$((NNODES - 1)) (NODE_RANK, or RANK), different on every node"
    require MASTER_ADDR "the address of node 0, reachable from every node"
    require MASTER_PORT "a free TCP port on node 0, the same on every node"
else
    NODE_RANK=${NODE_RANK:-0}
    MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
    MASTER_PORT=${MASTER_PORT:-29500}
fi
require_int NODE_RANK
(( NODE_RANK < NNODES )) || die "NODE_RANK=$NODE_RANK must be below NNODES=$NNODES"
require_int MASTER_PORT

# -- precision, attention, DeepSpeed, logging ----------------------------------------------------------------------

PRECISION=${PRECISION:-auto}
if [[ "$PRECISION" == auto ]]; then
    if (( CUDA_COUNT == 0 )); then
        PRECISION=fp32
    elif (( CUDA_BF16 )); then
        PRECISION=bf16
    else
        PRECISION=fp16
    fi
fi
case "$PRECISION" in
    bf16) PRECISION_ARGS=(--bf16 True) ;;
    fp16) PRECISION_ARGS=(--fp16 True) ;;
    fp32) PRECISION_ARGS=() ;;
    *) die "PRECISION=$PRECISION: expected auto, bf16, fp16 or fp32" ;;
esac
# TF32 matmuls exist from Ampere (compute capability 8) on; transformers rejects --tf32 elsewhere.
if (( CUDA_COUNT > 0 && CUDA_MAJOR >= 8 )); then
    PRECISION_ARGS+=(--tf32 True)
fi

ATTN=${ATTN:-auto}
if [[ "$ATTN" == auto ]]; then
    # Without flash-attn installed, llava.train falls back to sdpa with a warning.
    if (( CUDA_COUNT > 0 )); then ATTN=flash_attention_2; else ATTN=sdpa; fi
fi

DEEPSPEED=${DEEPSPEED:-$REPO_ROOT/scripts/zero3.json}
DEEPSPEED_ARGS=()
if [[ "$DEEPSPEED" != none ]]; then
    [[ -f "$DEEPSPEED" ]] || die "DEEPSPEED=$DEEPSPEED: no such file (or set DEEPSPEED=none)"
    (( HAS_DEEPSPEED )) || die "DEEPSPEED=$DEEPSPEED but $PYTHON cannot import deepspeed (pip install -e '.[train]', or DEEPSPEED=none)"
    DEEPSPEED_ARGS=(--deepspeed "$DEEPSPEED")
fi

COMPILE=${COMPILE:-0}
COMPILE_BACKEND=${COMPILE_BACKEND:-inductor}
COMPILE_ARGS=()
case "$COMPILE" in
    1) COMPILE_ARGS=(--torch_compile True --torch_compile_backend "$COMPILE_BACKEND") ;;
    0) ;;
    *) die "COMPILE=$COMPILE: expected 0 or 1" ;;
esac

REPORT_TO=${REPORT_TO:-wandb}
if [[ ",$REPORT_TO," == *,wandb,* ]] && (( ! HAS_WANDB )); then
    die "REPORT_TO=$REPORT_TO but $PYTHON cannot import wandb (pip install wandb, or REPORT_TO=none)"
fi
export WANDB_MODE=${WANDB_MODE:-offline}
export WANDB_PROJECT=${WANDB_PROJECT:-llava-ov-manager}
RUN_NAME_PREFIX=${RUN_NAME_PREFIX:-llava-ovm}

# torchrun would set 1 thread per process and warn; LLaVA-OneVision's scripts use 8.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

# -- stage directories ---------------------------------------------------------------------------------------------

OUTPUT_ROOT=${OUTPUT_ROOT:-$REPO_ROOT/outputs}
STAGE1_DIR=${STAGE1_DIR:-$OUTPUT_ROOT/$VARIANT/stage1}
STAGE1_5_DIR=${STAGE1_5_DIR:-$OUTPUT_ROOT/$VARIANT/stage1_5}
STAGE2_DIR=${STAGE2_DIR:-$OUTPUT_ROOT/$VARIANT/stage2}

# This machine's flags, shared by every stage. A stage passes its paths, its recipe, these, then the user's "$@".
MACHINE_ARGS=(
    "${DEEPSPEED_ARGS[@]}"
    "${PRECISION_ARGS[@]}"
    --attn_implementation "$ATTN"
    --report_to "$REPORT_TO"
    "${COMPILE_ARGS[@]}"
)

# -- per-stage checks (also run up front by curriculum.sh) ----------------------------------------------------------

check_stage1_env() {
    resolve_model_dir LLM "the LLM to start from: a local directory or a hub id such as Qwen/Qwen2-0.5B-Instruct"
    resolve_model_dir VISION_TOWER "the SigLIP tower: a local directory or a hub id such as google/siglip-so400m-patch14-384"
    require_data DATA_STAGE1
    image_folder_for STAGE1 DATA_STAGE1 >/dev/null
    recipe_args stage1
}

check_stage1_5_env() {
    resolve_model_dir LLM "the LLM to start from: a local directory or a hub id such as Qwen/Qwen2-0.5B-Instruct"
    resolve_model_dir VISION_TOWER "the SigLIP tower: a local directory or a hub id such as google/siglip-so400m-patch14-384"
    require_data DATA_STAGE1_5
    image_folder_for STAGE1_5 DATA_STAGE1_5 >/dev/null
    recipe_args stage1_5
}

check_stage2_env() {
    require_data DATA_STAGE2
    image_folder_for STAGE2 DATA_STAGE2 >/dev/null
    recipe_args stage2
}

# recipe_args STAGE: RECIPE_ARGS = the stage recipe's flags for this VARIANT, the environment's overrides applied.
recipe_args() {
    local listing
    listing=$("$PYTHON" "$RECIPES" argv "$1" --variant "$VARIANT") || die "the $1 recipe cannot take the settings above"
    mapfile -t RECIPE_ARGS <<<"$listing"
}

# last_value FLAG ARGS...: the value of the last FLAG in ARGS (argparse's reading of a repeated flag).
last_value() {
    local flag=$1 value=""
    shift
    while (( $# > 1 )); do
        [[ "$1" == "$flag" ]] && value=$2
        shift
    done
    echo "$value"
}

# launch STAGE OUTPUT_DIR TRAIN_ARGS...: runs llava.train.train under torchrun on this node and tees its output to
# OUTPUT_DIR/train_node<RANK>.log. Its exit status is the training's. DRY_RUN=1 prints the command instead.
launch() {
    local stage=$1 out=$2 batch accum
    shift 2
    batch=$(last_value --per_device_train_batch_size "$@")
    accum=$(last_value --gradient_accumulation_steps "$@")
    require_int batch
    require_int accum
    local cmd=("$PYTHON" -m torch.distributed.run
               --nproc_per_node="$NUM_GPUS" --nnodes="$NNODES" --node_rank="$NODE_RANK"
               --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT"
               -m llava.train.train "$@")
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        printf '%s\n' "${cmd[@]}"
        return 0
    fi
    mkdir -p "$out"
    note "stage $stage, variant $VARIANT, node $NODE_RANK of $NNODES, $NUM_GPUS processes per node, $PRECISION, $ATTN"
    note "global batch = $NNODES nodes x $NUM_GPUS x $batch per device x $accum accumulation = $((NNODES * NUM_GPUS * batch * accum))"
    note "output: $out"
    note "command: ${cmd[*]}"
    # Unbuffered, so the log file follows the run; wandb's offline files go next to the stage's outputs.
    PYTHONUNBUFFERED=1 WANDB_DIR="${WANDB_DIR:-$out}" "${cmd[@]}" 2>&1 | tee -a "$out/train_node$NODE_RANK.log"
}
