#!/usr/bin/env bash
# Fine-tune MODEL on nlvr2 with the paper's recipe (Table XIV; python -m managertower.train.recipes show nlvr2), from its
# pre-trained backbone (INIT_FROM), and evaluate it into results.json.
#
#   MODEL=managertower DATA_ROOT=/data/arrow bash scripts/managertower/finetune_nlvr2.sh [extra flags]
#
# LR, BATCH_SIZE, PER_DEVICE, EPOCHS, MAX_STEPS, IMAGE_SIZE, WARMUP and WEIGHT_DECAY replace the recipe's fields.
#
# Every check (variables, paths, devices, nodes, INIT_FROM) runs before training starts, in
# python -m managertower.train.launch, whose docstring lists the environment it reads (docs/managertower_training.md).
# Arguments after the script's name go to python -m managertower.train.train after the recipe's values, so they win.
# DRY_RUN=1 prints the run config and the command, one argument per line, instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m managertower.train.launch nlvr2 "$@"
