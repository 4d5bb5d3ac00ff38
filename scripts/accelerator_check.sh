#!/usr/bin/env bash
# The accelerator check: one prepared command, under 7 minutes on an H100, writing into results/<backend>/.
#
#   scripts/accelerator_check.sh            # full sizes (for a GPU/TPU; each step has its own time limit)
#   scripts/accelerator_check.sh --tiny     # tiny sizes, end to end on CPU (CI runs this; about 80 s of CPU time)
#
# Works from a plain checkout: it puts the repository on PYTHONPATH, so jax, flax, optax, chex, orbax, pytest,
# hypothesis (and torch, for the nanoGPT comparison) must be installed but jaxequiv need not be.
# Environment: PYTHON (default python), JAXEQUIV_TINY=1 (same as --tiny), JAXEQUIV_CHECK_OUT (output folder;
# default results/<backend>, or results/<backend>_tiny with --tiny).
#
# Steps (each logs to OUT/<step>.log; OUT/summary.md lists status, seconds and command):
#   verify           python -m jaxequiv verify, with the backend's determinism flags
#   verify_no_flags  the same without them (--no-determinism-flags), to show what they buy
#   bitwise_tests    the core bitwise pytest tests: f32/bf16 gradients, shuffled, packed rows, trajectories,
#                    jax.nn.dot_product_attention (cuDNN on GPU)
#   bench_train      nanoGPT's "baby" config (6 layers, width 384, 6 heads, T=256, batch 64, bf16), MFU on GPU
#   bench_train_cudnn  the same with cuDNN's fused attention (GPU only)
#   bench_peers      nanoGPT (torch.compile on GPU) vs jaxequiv, side by side
#   bench_equivalence  T=128: LM vs packed vs unpacked step time, packing throughput, density
#   bench_sample     the KV-cached sampler at batch 1 and 256
# Exit status: 0 if every step passed.

set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
TINY=${JAXEQUIV_TINY:-0}
if [ "${1:-}" = "--tiny" ]; then TINY=1; fi
TINY_LIMIT=300  # tiny mode: a guard against a hang, not a timing (a busy 2-core CPU compiles slowly)

BACKEND=$($PY -c "import jax; print(jax.default_backend())" 2>/dev/null) || { echo "jax failed to start" >&2; exit 2; }
if [ "$TINY" = 1 ]; then DEFAULT_OUT="results/${BACKEND}_tiny"; else DEFAULT_OUT="results/${BACKEND}"; fi
OUT=${JAXEQUIV_CHECK_OUT:-$DEFAULT_OUT}
mkdir -p "$OUT"
TORCH_DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "uname: $(uname -a)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//') ($(nproc 2>/dev/null) cores)"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'backend', jax.default_backend(), jax.devices())"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>/dev/null || echo "torch: not installed"
  echo "tiny: $TINY"
} > "$OUT/machine.txt" 2>&1

SUMMARY="$OUT/summary.md"
printf '# accelerator_check (%s)\n\n' "$BACKEND" > "$SUMMARY"
sed 's/^/- /' "$OUT/machine.txt" >> "$SUMMARY"
printf '\n| step | status | seconds | command |\n|---|---|---|---|\n' >> "$SUMMARY"
FAILED=0

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS status rc
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then status=PASS; elif [ $rc = 124 ]; then status="TIMEOUT (${limit}s)"; else status="FAIL (exit $rc)"; fi
  [ $rc = 0 ] || FAILED=1
  echo "   $status in $((SECONDS - start))s; log $OUT/$name.log"
  [ $rc = 0 ] || tail -5 "$OUT/$name.log" | sed 's/^/   | /'
  local cmd="$*"
  printf '| %s | %s | %s | `%s` |\n' "$name" "$status" "$((SECONDS - start))" "${cmd//$'\n'/ }" >> "$SUMMARY"
}

if [ "$TINY" = 1 ]; then
  # Compiling dominates at tiny sizes. The CLI's verify also runs every wing's identities (a minute on a busy
  # CPU), so tiny mode runs the core checks through the library entry point the CLI uses, once (on CPU the
  # determinism flags are empty, so the no-flags run would repeat it).
  step verify $TINY_LIMIT $PY -c "from jaxequiv import determinism, verify; import sys; determinism.set_xla_flags()
sys.exit(0 if verify.run_checks(verify.VerifyConfig(1, 16, 2, 8, 'gelu', 4, 2, 1, 0)) else 1)"
  step bitwise_tests $TINY_LIMIT $PY -m pytest -q -n 0 -p no:cacheprovider tests/losses_test.py \
      -k "dot_product_attention and float32 and einsum"
  step bench_train $TINY_LIMIT $PY scripts/bench_train.py --preset tiny --steps 2 --warmup 1 --out "$OUT/bench_train"
  # Without torch (CI's test extra) the tiny run times jaxequiv alone, on purpose and said so in its report.
  PEER_FLAG=$($PY -c "import torch" 2>/dev/null || echo --jaxequiv-only)
  step bench_peers $TINY_LIMIT $PY scripts/bench_peers.py --preset tiny --windows 1 --window 1 --warmup 1 \
      --device "$TORCH_DEVICE" $PEER_FLAG --out "$OUT/bench_peers"
  step bench_equivalence $TINY_LIMIT $PY scripts/bench_equivalence.py --corpus builtin --seq-len 64 --batch 2 --repeats 1 \
      --layers 1 --width 16 --packing-budget 2e3 --density-seq-lens 64 --out "$OUT/bench_equivalence.md"
  step bench_sample $TINY_LIMIT $PY scripts/bench_sample.py --contexts 8 --batch 1 2 --layers 1 --width 16 --heads 2 \
      --repeats 1 --no-cache-positions 2 --out "$OUT/bench_sample"
else
  step verify 75 $PY -m jaxequiv verify
  step verify_no_flags 50 $PY -m jaxequiv verify --no-determinism-flags
  step bitwise_tests 100 $PY -m pytest -q -n 0 -p no:cacheprovider tests/losses_test.py \
      -k "(gradients_bitwise_equal or trajectories or dot_product_attention or benchmark_scale) and not many_examples"
  step bench_train 45 $PY scripts/bench_train.py --preset h100 --steps 20 --out "$OUT/bench_train"
  if [ "$BACKEND" = gpu ]; then
    step bench_train_cudnn 40 $PY scripts/bench_train.py --preset h100 --steps 20 --attention cudnn \
        --out "$OUT/bench_train_cudnn"
  fi
  step bench_peers 80 $PY scripts/bench_peers.py --preset baby --device "$TORCH_DEVICE" --windows 6 --window 5 \
      --out "$OUT/bench_peers"
  step bench_equivalence 45 $PY scripts/bench_equivalence.py --seq-len 128 --repeats 20 --packing-budget 5e5 \
      --out "$OUT/bench_equivalence.md"
  step bench_sample 30 $PY scripts/bench_sample.py --contexts 256 --batch 1 256 --repeats 3 --out "$OUT/bench_sample"
fi

printf '\nTotal: %ss; %s\n' "$SECONDS" "$([ $FAILED = 0 ] && echo 'every step passed' || echo 'some steps FAILED')" >> "$SUMMARY"
echo "summary: $SUMMARY (${SECONDS}s)"
exit $FAILED
