#!/usr/bin/env bash
# The GPU comparison of README "Performance": rnnlm_jax (its default
# custom_vjp scan, and as variants cuDNN's LSTM through jax.experimental.rnn,
# bf16 products and lax.scan unrolled 8 steps) against PyTorch's cuDNN
# nn.LSTM, at Zaremba medium and large (bptt 35), batch 20
# and then 128, one experiments.benchmark run per batch size.
#
#   experiments/gpu_benchmark.sh OUT_DIR
#
# Runs tests/cudnn_test.py and tests/bf16_test.py there first
# (OUT_DIR/gpu_tests.log), then writes OUT_DIR/gpu_b{B}.json and .log, and
# OUT_DIR/gpu.txt (the device and versions). The settings come from the
# environment: PRESETS, BATCHES, IMPLS (default torch,rnnlm_jax: the
# peer and the default scan first, then the variants; add flax to time it
# too), VARIANTS, REPEATS, STEPS, PEER_DEVICE,
# PEER_SCRIPT (the peer script, by default the benchmark's), TORCH_PYTHON
# (default python3), TESTS_S (the tests' limit, default 150) and BUDGET_S
# (the seconds the whole script may take, default 540): each benchmark run
# gets an equal share of what is left as its --deadline_s, so a slow run
# still writes its report with what it measured. A smoke run on a CPU:
#   PRESETS=tiny BATCHES=4 VARIANTS=bf16:gemm=bf16 PEER_DEVICE=cpu \
#     experiments/gpu_benchmark.sh /tmp/gpu_smoke
set -uo pipefail
started=$SECONDS
cd "$(dirname "$0")/.."
out=${1:?usage: experiments/gpu_benchmark.sh OUT_DIR}
mkdir -p "$out"
python=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$python" -c "import jax, flax; print('jax', jax.__version__, 'flax', \
flax.__version__, jax.devices())"
  "${TORCH_PYTHON:-$python}" -c "import torch; print('torch', \
torch.__version__, 'cudnn', torch.backends.cudnn.version())" 2>&1
} >"$out/gpu.txt"
# First the GPU paths' correctness: cuDNN's kernel against the scan, bf16.
timeout "${TESTS_S:-150}" "$python" -m pytest -q -n 0 -p no:cacheprovider \
  -rs tests/cudnn_test.py tests/bf16_test.py >"$out/gpu_tests.log" 2>&1
status=$?
tail -3 "$out/gpu_tests.log"
batches=(${BATCHES:-20 128})
for i in "${!batches[@]}"; do
  batch=${batches[$i]}
  left=$(( ${BUDGET_S:-540} - (SECONDS - started) ))
  share=$(( left / (${#batches[@]} - i) - 10 ))
  if (( share < 30 )); then
    echo "batch $batch: not run, ${left} s of BUDGET_S left" |
      tee -a "$out/gpu_tests.log"
    status=1
    continue
  fi
  PYTHONUNBUFFERED=1 TORCH_PYTHON=${TORCH_PYTHON:-$python} \
    timeout $(( share + 20 )) "$python" -m experiments.benchmark \
    --deadline_s="$share" \
    --preset="${PRESETS:-zaremba_medium,zaremba_large}" --cell=lstm \
    --batch="$batch" --impls="${IMPLS:-torch,rnnlm_jax}" \
    --variants="${VARIANTS:-cudnn:scan_impl=cudnn,bf16:gemm=bf16,unroll8:unroll=8}" \
    --peer_device="${PEER_DEVICE:-cuda}" \
    ${PEER_SCRIPT:+--peer_script="$PEER_SCRIPT"} \
    --gemm_n=8192 --steps="${STEPS:-20}" --warmup=3 \
    --repeats="${REPEATS:-1}" --out="$out/gpu_b$batch.json" \
    2>&1 | tee "$out/gpu_b$batch.log" || status=1
done
exit $status
