#!/usr/bin/env bash
# The one prepared GPU script (issue 10, items 5-6), for the device tool:
#   bash benchmarks/gpu_wheels.sh                        # here, once: the wheels the GPU machine lacks
#   run(command="bash benchmarks/gpu_run.sh", carry=["gpu_wheels"], timeout_s=590)
# CPU dry run here: PYTHON=.venv/bin/python SKIP_INSTALL=1 OUT=/tmp/gpu_dry \
#   BENCH_ARGS="--device cpu --toy --batches 2 --steps 1 --warmup 0 --retrieval-images 4 --k 2" \
#   bash benchmarks/gpu_run.sh
# There: installs the carried wheels (no registry), records the device, runs the gpu-marked tests and
# benchmarks/gpu_base_preset.py; everything lands under $OUT (default work_dirs/gpu). Each stage has
# its own time limit so that a slow one cannot take the others' results with it.
set -uo pipefail
OUT=${OUT:-work_dirs/gpu}
WHEELS=${WHEELS:-gpu_wheels}
SITE=${SITE:-/tmp/vlreg-site}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/status.txt"
if [ -z "${SKIP_INSTALL:-}" ]; then  # SKIP_INSTALL=1: a CPU dry run in this project's environment
    $PY -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl \
        > "$OUT/install.log" 2>&1 || echo "wheel install failed: see install.log" >> "$OUT/status.txt"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY - > "$OUT/device.json" 2>&1 <<'PY'
import json, torch, vlreg
vlreg.setup_env()  # the torchvision-ops shim before timm (ENVIRONMENT.md)
import mmengine, albumentations, timm, transformers
print(json.dumps(dict(torch=torch.__version__, cuda=torch.version.cuda,
      device=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
      mmengine=mmengine.__version__, albumentations=albumentations.__version__,
      timm=timm.__version__, transformers=transformers.__version__)))
PY
echo "imports: $?" >> "$OUT/status.txt"
timeout 120 $PY -m pytest -q -m gpu tests -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests: $?" >> "$OUT/status.txt"
# BENCH_ARGS: extra arguments, e.g. the dry run's "--device cpu --toy --batches 2 --steps 1 ..."
timeout "${BENCH_LIMIT:-400}" $PY benchmarks/gpu_base_preset.py --out "$OUT/gpu_base_preset.json" \
    ${BENCH_ARGS:-} \
    > "$OUT/gpu_base_preset.log" 2>&1
echo "benchmark: $?" >> "$OUT/status.txt"
cat "$OUT/status.txt"
