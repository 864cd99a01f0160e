#!/usr/bin/env bash
# The lent GPU machine's one call (docs/gpu.md): the carried wheels (.whl/, from
# scripts/gpu_wheels.py) into $SITE, then scripts/gpu_check.py with the image's python3,
# which builds the extension once (for the GPU it finds) and writes its report and log
# under $OUT, the folder that comes back; machine.txt beside them says what ran.
#
#   OUT=/path bash scripts/gpu_call.sh
#
# Rehearsal without a GPU (docs/gpu.md): PYTHON=<venv>/bin/python SITE=/tmp/site-rehearsal
# GPU_CHECK_ARGS=--rehearse OUT=<dir> bash scripts/gpu_call.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
: "${OUT:?OUT must name the folder that comes back}"
ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_call: no .whl/*.whl: run make gpu-wheels and carry .whl"; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
  || { echo "gpu_call: the carried wheels did not install"; exit 3; }
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{ date -u; nvidia-smi 2>&1 || echo "no nvidia-smi"; command -v nvcc ncu
  "$PY" -c "import sys, torch, setuptools; print(sys.version); print('torch', torch.__version__, torch.version.cuda, \
'setuptools', setuptools.__version__)"; } >"$OUT/machine.txt" 2>&1
# shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of flags
"$PY" scripts/gpu_check.py --out "$OUT" --budget-s "${BUDGET_S:-360}" ${GPU_CHECK_ARGS:-}
status=$?
cat "$OUT/gpu_check.md"  # the reply carries the end of the output, even if no file comes back
exit $status
