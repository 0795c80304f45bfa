#!/usr/bin/env bash
# The LLaVA-OneVision curriculum for one VARIANT: stage 1 -> stage 1.5 -> stage 2, each starting from the output
# of the one before. Arguments are passed on to every stage (e.g. --max_steps 100 for a smoke run).
#
#   VARIANT=grid_manager LLM=... VISION_TOWER=... DATA_STAGE1=... DATA_STAGE1_5=... DATA_STAGE2=... \
#   IMAGE_FOLDER=... bash scripts/train/curriculum.sh
#
# STAGES picks the stages to run, in order (default "1 1.5 2"; e.g. STAGES="1.5 2" reuses an existing stage 1).
# The variables of every selected stage are checked before the first one starts; a failing stage stops the
# curriculum with its exit status. Re-running resumes each stage from its newest complete checkpoint
# (--resume auto).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/train/common.sh
source "$here/common.sh"

STAGES=${STAGES:-1 1.5 2}
read -r -a stage_list <<<"$STAGES"
(( ${#stage_list[@]} > 0 )) || die "STAGES is empty"
for stage in "${stage_list[@]}"; do
    [[ "$stage" =~ ^(1|1\.5|1_5|2)$ ]] || die "STAGES: unknown stage '$stage' (expected 1, 1.5 or 2)"
done
for stage in "${stage_list[@]}"; do
    case "$stage" in
        1) check_stage1_env ;;
        1.5 | 1_5) check_stage1_5_env ;;
        2) check_stage2_env ;;
    esac
done

# Hub ids were resolved to local snapshots by the checks: hand the stages the local paths.
export LLM=${LLM:-} VISION_TOWER=${VISION_TOWER:-}

for stage in "${stage_list[@]}"; do
    script=$here/stage${stage/./_}.sh
    note "curriculum $VARIANT: stage $stage ($script)"
    start=$SECONDS
    bash "$script" "$@"
    note "curriculum $VARIANT: stage $stage finished in $((SECONDS - start)) s"
done
note "curriculum $VARIANT done (stages: ${stage_list[*]})"
