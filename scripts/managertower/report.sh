#!/usr/bin/env bash
# The paper's tables (I, II, III) and Fig. 6 from every results.json under the given folders.
#
#   bash scripts/managertower/report.sh outputs/managertower [more/runs ...] --out DIR
set -euo pipefail
PYTHON=${PYTHON:-python}
if [[ $# -eq 0 ]]; then
    echo "usage: $0 RESULTS_DIR [RESULTS_DIR ...] --out DIR" >&2
    exit 2
fi
exec "$PYTHON" -m managertower.report "$@"
