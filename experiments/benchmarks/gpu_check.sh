#!/usr/bin/env bash
# The GPU check (<= 5 minutes on one GPU): one JSON line per measurement; see gpu_check.py.
#   bash experiments/benchmarks/gpu_check.sh            # on a GPU machine
#   bash experiments/benchmarks/gpu_check.sh --smoke    # anywhere (tiny sizes), to check it runs
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec "$PY" experiments/benchmarks/gpu_check.py "$@"
