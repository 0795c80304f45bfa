# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the eval scripts
# Shared part of the evaluation scripts. Sourced, never run.
#
# Environment (see docs/evaluation.md):
#   CKPT          checkpoint directory (a stage-2 output)                                       (required)
#   OUT           results go to $OUT/{offline,judged_predict,judged_scored}    (default: $CKPT/eval)
#   PYTHON        interpreter with llava and lmms-eval installed                                (default: python)
#   NUM_GPUS      processes for accelerate launch                 (default: the CUDA devices visible, else 1)
#   MODEL         llava_ov_manager (ours, batched) | llava_onevision (lmms-eval's stock wrapper)
#                                                                                (default: llava_ov_manager)
#   BATCH_SIZE    per process; the stock wrapper only takes 1                                      (default: 1)
#   LOCAL_TASKS   directory written by `python -m llava.eval.prepare_offline` (DIR/tasks): use the offline
#                 copies (<task>_local) instead of the hub datasets                              (default: unset)
#   LIMIT         evaluate only the first N documents of each task (smoke runs)                   (default: unset)
#   TASKS         comma-separated lmms-eval tasks instead of the script's benchmark list (a subset, or your
#                 own tasks)                                                                     (default: unset)
#   INCLUDE_PATH  an extra directory of task YAMLs (e.g. for TASKS)                              (default: unset)
#
# Arguments after the script's own go to lmms-eval unchanged.

set -euo pipefail

EVAL_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$EVAL_SCRIPTS/../.." && pwd)

die() {
    echo "error: $*" >&2
    exit 1
}

note() {
    echo "[llava-ovm eval] $*" >&2
}

[[ -n "${CKPT:-}" ]] || die "CKPT is not set: the checkpoint directory to evaluate (e.g. outputs/grid_manager/stage2)"
[[ -f "$CKPT/config.json" ]] || die "CKPT=$CKPT has no config.json: not a checkpoint directory"
PYTHON=${PYTHON:-python}
OUT=${OUT:-$CKPT/eval}
MODEL=${MODEL:-llava_ov_manager}
BATCH_SIZE=${BATCH_SIZE:-1}
if [[ -z "${NUM_GPUS:-}" ]]; then
    NUM_GPUS=$("$PYTHON" -c 'import torch; print(max(1, torch.cuda.device_count()))')
fi
[[ "$NUM_GPUS" =~ ^[1-9][0-9]*$ ]] || die "NUM_GPUS=$NUM_GPUS must be a positive integer"
[[ "$BATCH_SIZE" =~ ^[1-9][0-9]*$ ]] || die "BATCH_SIZE=$BATCH_SIZE must be a positive integer"

case "$MODEL" in
    llava_ov_manager) MODEL_ARGS="pretrained=$CKPT" ;;
    llava_onevision)
        [[ "$BATCH_SIZE" == 1 ]] || die "the stock llava_onevision wrapper only runs BATCH_SIZE=1"
        device_map=auto
        (( NUM_GPUS > 1 )) && device_map=cuda
        MODEL_ARGS="pretrained=$CKPT,conv_template=qwen_1_5,model_name=llava_qwen,device_map=$device_map" ;;
    *) die "MODEL=$MODEL: choose llava_ov_manager or llava_onevision" ;;
esac

TASK_FLAGS=()
INCLUDE=()
if [[ -n "${LOCAL_TASKS:-}" && -n "${INCLUDE_PATH:-}" ]]; then
    die "set one of LOCAL_TASKS and INCLUDE_PATH (lmms-eval takes one --include_path)"
fi
if [[ -n "${LOCAL_TASKS:-}" ]]; then
    [[ -d "$LOCAL_TASKS" ]] || die "LOCAL_TASKS=$LOCAL_TASKS is not a directory"
    TASK_FLAGS=(--local)
    INCLUDE=(--include_path "$LOCAL_TASKS")
elif [[ -n "${INCLUDE_PATH:-}" ]]; then
    [[ -d "$INCLUDE_PATH" ]] || die "INCLUDE_PATH=$INCLUDE_PATH is not a directory"
    INCLUDE=(--include_path "$INCLUDE_PATH")
fi

# benchmark_tasks --offline|--judged: TASKS when set, else that part of the paper's benchmarks.
benchmark_tasks() {
    if [[ -n "${TASKS:-}" ]]; then
        echo "$TASKS"
    else
        "$PYTHON" -m llava.eval.benchmarks "$1" "${TASK_FLAGS[@]}"
    fi
}
LIMIT_FLAGS=()
[[ -n "${LIMIT:-}" ]] && LIMIT_FLAGS=(--limit "$LIMIT")

# run_lmms_eval OUTPUT_DIR TASKS [lmms-eval args...]: the guarded runner (non-zero exit on any failure).
run_lmms_eval() {
    local output=$1 tasks=$2
    shift 2
    local device
    device=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
    note "$MODEL on $tasks -> $output ($NUM_GPUS process(es))"
    "$PYTHON" -m llava.eval.run --num_processes "$NUM_GPUS" -- \
        --model "$MODEL" --model_args "$MODEL_ARGS" --tasks "$tasks" --batch_size "$BATCH_SIZE" \
        --device "$device" --output_path "$output" --log_samples "${INCLUDE[@]}" "${LIMIT_FLAGS[@]}" "$@"
}
