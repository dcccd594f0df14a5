#!/usr/bin/env bash
# CUDA checks for a machine whose python3 already holds torch, numpy and pytest (no uv, no
# network): the CUDA tests of hbm-ne and hbm-dl, then the hbm-ne benchmark on the GPU.
# Logs go to $OUT (default ./gpu-check). Wheels in ./.whl (e.g. gymnasium and Box2D, for the
# environment tests) are installed to a scratch folder first. Usage: bash tools/gpu_check.sh
set -o pipefail
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
root=$PWD
extra=""
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/hbm-site .whl/*.whl && extra=":/tmp/hbm-site"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
status=0
(cd packages/hbm-ne && PYTHONPATH=src:tests$extra timeout 300 python3 -m pytest -q tests \
    -m "not slow" -p no:cacheprovider >"$OUT/ne_tests.log" 2>&1) || status=1
tail -8 "$OUT/ne_tests.log"
(cd packages/hbm-dl && PYTHONPATH=src:tests$extra timeout 200 python3 -m pytest -q \
    tests/test_dl_cuda.py -p no:cacheprovider >"$OUT/dl_tests.log" 2>&1) || status=1
tail -8 "$OUT/dl_tests.log"
PYTHONPATH=$root/packages/hbm-ne/src:$root/bench timeout 240 python3 bench/run.py --only ne \
    --device cuda --quick --out "$OUT/bench" 2>&1 | tail -25 | tee "$OUT/bench.log" || status=1
exit $status
