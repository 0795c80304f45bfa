#!/usr/bin/env bash
# The LLaVA-OneVision curriculum for one VARIANT: stage 1 -> stage 1.5 -> stage 2, each starting from the output
# of the one before. Arguments are passed on to every stage (e.g. --max_steps 100 for a smoke run).
#
#   VARIANT=grid_manager LLM=... VISION_TOWER=... DATA_STAGE1=... DATA_STAGE1_5=... DATA_STAGE2=... \
#   IMAGE_FOLDER=... bash scripts/train/curriculum.sh
#
# STAGES picks the stages to run, in order (default "1 1.5 2"; e.g. STAGES="1.5 2" reuses an existing stage 1).
# The settings of every selected stage are checked before the first one starts; a failing stage stops the
# curriculum with its exit status. Re-running resumes each stage from its newest complete checkpoint.
#
# Every check (variables, paths, devices, nodes, the previous stage's output) runs before training starts, in
# python -m llava.train.launch (docs/training.md lists the environment it reads). Arguments after the script's name
# go to python -m llava.train.train after the recipe's values, so they win. DRY_RUN=1 prints the run config and the
# command instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m llava.train.launch curriculum "$@"
