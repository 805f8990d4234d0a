#!/usr/bin/env bash
# The GPU measurements in one go, for a lent GPU machine with PyTorch but without DeepSpeed or
# pydantic: wheels for those are carried in .whl/ (bench/RESULTS.md, "Training on an H100", says how
# they were made). Steps: 125m-sdpa 125m-flex 125m-compile 125m-compile-mb16 125m-compile-mb32
# 350m-compile 350m-compile-mb16 350m-flex profile-ARGS (bench/train_profile.py ARGS, e.g. profile---compile).
# Writes the figures to $OUT/gpu_results.md and the logs beside it.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export DS_ACCELERATOR=cuda PYTHONUNBUFFERED=1
R=$OUT/gpu_results.md
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, deepspeed; print('torch', torch.__version__, 'deepspeed', deepspeed.__version__)" | tee -a "$OUT/device.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider --noconftest tests/test_model.py tests/test_engine.py -k "flex or peak or compiled" \
  > "$OUT/test_model.log" 2>&1; tail -3 "$OUT/test_model.log"
run() { echo "== $*"; timeout "${LIMIT:-400}" python3 bench/train_throughput.py --results "$R" "$@" 2>&1 \
        | grep -v "^\[20" | tail -25 >> "$OUT/bench.log"; tail -4 "$OUT/bench.log"; }
B="--seq-len 2048 --micro-batch 8 --zero 1 2 --precision bf16 --vocab 50304 --steps 15 --rounds 3"
for step in "$@"; do
  case $step in
    125m-sdpa) run --preset 125m $B --attention sdpa ;;
    125m-flex) run --preset 125m $B ;;
    125m-compile) run --preset 125m $B --compile ;;
    125m-compile-mb16) run --preset 125m ${B/--micro-batch 8/--micro-batch 16} --compile ;;
    125m-compile-mb32) run --preset 125m ${B/--micro-batch 8/--micro-batch 32} --compile ;;
    350m-compile) run --preset 350m $B --compile ;;
    350m-compile-mb16) run --preset 350m ${B/--micro-batch 8/--micro-batch 16} --compile ;;
    350m-flex) run --preset 350m $B ;;
    profile-*) timeout 300 python3 bench/train_profile.py ${step#profile-} > "$OUT/$step.log" 2>&1; head -3 "$OUT/$step.log" ;;
  esac
done
