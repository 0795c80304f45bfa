#!/usr/bin/env bash
# The paper's ablations without VLP: VQAv2 and Flickr30K fine-tuned from the raw experts for every row of
# Table I (manager types and queries), Table II (L_C) or Fig. 6 (N), then the report of all results.
#
#   ABLATION=table1 DATA_ROOT=/data/arrow TEXT_EXPERT=... VISION_EXPERT=... bash scripts/managertower/ablation.sh
#
#   ABLATION   table1 | table2 | fig6                                                              (required)
#   ROWS       a space-separated subset of presets (default: the ablation's, managertower.presets.ABLATIONS)
#   TASKS      a subset of "vqa_novlp f30k_novlp"                                          (default: both)
# MODEL is set per row; every name is checked before the first run. Extra flags go to every run.
#
# Every check (variables, paths, devices, nodes, INIT_FROM) runs before training starts, in
# python -m managertower.train.launch, whose docstring lists the environment it reads (docs/managertower_training.md).
# Arguments after the script's name go to python -m managertower.train.train after the recipe's values, so they win.
# DRY_RUN=1 prints the run config and the command, one argument per line, instead of running them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Run the checkout the script lives in, whether or not it is installed.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m managertower.train.launch ablation "$@"
