#!/usr/bin/env bash
# Everything a session with a lent GPU should run, in one call, from the repository root:
#
#     bash bench/gpu_session.sh
#
# 1. GPU summary (nvidia-smi, torch), 2. just-in-time build of the cuda backend (timed) and the
# architectures it holds, 3. the cuda tests, then the whole test suite, 4. compute-sanitizer
# (memcheck, racecheck, synccheck) on bench/cuda_sanitize_scene.py, 5. the benchmark
# bench/bench_composite.py --device cuda, and last a summary table. Every step runs even when
# an earlier one failed; the exit status is that of the first failure. With $OUT set (the
# device tool sets it) everything is also written to $OUT/gpu_session.log.
#
# Environment: PYTHON (default python3), DIFFBMP_CACHE_DIR (default a fresh folder under /tmp,
# so the build is timed from scratch), SANITIZER (default compute-sanitizer), SANITIZE_TIMEOUT
# (seconds per sanitizer run, default 240), PYTEST_WORKERS (pytest-xdist workers for the whole
# suite, default 8). A package missing on the GPU machine can travel
# as a wheel (see the device tool's notes); the "import diffbmp" step names it.
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 1
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_session.log") 2>&1
fi

PYTHON=${PYTHON:-python3}
SANITIZER=${SANITIZER:-compute-sanitizer}
export PYTHONUNBUFFERED=1
# The build cache and the sources of this checkout only (no global settings are changed).
CACHE_DIR=${DIFFBMP_CACHE_DIR:-$(mktemp -d /tmp/diffbmp-cache.XXXXXX)}

STEPS=()
STATUS=0

# step NAME COMMAND...: runs COMMAND, records its exit status and wall time.
step() {
  local name=$1
  shift
  echo
  echo "===== $name: $* ====="
  local start end rc
  start=$(date +%s.%N)
  "$@"
  rc=$?
  end=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -eq 0 ]; then
    STEPS+=("$(printf '%-28s %-6s %8ss' "$name" ok "$seconds")")
  else
    STEPS+=("$(printf '%-28s %-6s %8ss  (exit %d)' "$name" FAILED "$seconds" "$rc")")
    [ "$STATUS" -eq 0 ] && STATUS=$rc
  fi
  return 0
}

gpu_summary() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || return $?
  nvcc --version | tail -n 2
  "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| device', torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))"
}

build_cuda() {
  DIFFBMP_CACHE_DIR=$CACHE_DIR "$PYTHON" -c "
from diffbmp._backend import native_module
m = native_module('cuda')
print('built', m.__file__)
" || return $?
  # The architectures in the build: SASS per sm_XX, and PTX for newer GPUs.
  local so
  so=$(find "$CACHE_DIR" -name '*.so' | head -n 1)
  if command -v cuobjdump >/dev/null && [ -n "$so" ]; then
    echo "SASS: $(cuobjdump --list-elf "$so" 2>/dev/null | grep -o 'sm_[0-9a-z]*' | sort -u | tr '\n' ' ')"
    echo "PTX:  $(cuobjdump --list-ptx "$so" 2>/dev/null | grep -o 'sm_[0-9a-z]*' | sort -u | tr '\n' ' ')"
  fi
}

sanitize() {
  local tool=$1
  if ! command -v "$SANITIZER" >/dev/null; then
    echo "$SANITIZER not found"
    return 127
  fi
  # No caching allocator: out-of-bounds accesses inside its blocks would go unseen.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 DIFFBMP_CACHE_DIR=$CACHE_DIR \
    timeout "${SANITIZE_TIMEOUT:-240}" "$SANITIZER" --tool "$tool" --error-exitcode 3 "$PYTHON" bench/cuda_sanitize_scene.py
}

benchmark() {
  if [ ! -f bench/bench_composite.py ]; then
    echo "bench/bench_composite.py does not exist (yet): no benchmark"
    return 0
  fi
  DIFFBMP_CACHE_DIR=$CACHE_DIR "$PYTHON" bench/bench_composite.py --device cuda
}

step "gpu summary" gpu_summary
step "import diffbmp" env PYTHONPATH="$PWD:$PWD/tests" "$PYTHON" -c "import diffbmp; print('diffbmp', diffbmp.__file__)"
step "build cuda backend (JIT)" build_cuda
# The cuda tests first, so an unrelated failure under -x cannot hide them; the emulation of
# the kernels (TestEmulatedCuda) is for machines without a GPU.
step "pytest cuda tests" env DIFFBMP_CACHE_DIR="$CACHE_DIR" "$PYTHON" -m pytest tests/test_cuda.py tests/test_cuda_compiles.py -q -k "not Emulated"
# In parallel where pytest-xdist is installed (the GPU image has it): the suite takes minutes
# on one core, and a device call has ten.
WORKERS=()
if "$PYTHON" -c "import xdist" 2>/dev/null; then WORKERS=(-n "${PYTEST_WORKERS:-8}"); fi
step "pytest whole suite" env DIFFBMP_CACHE_DIR="$CACHE_DIR" "$PYTHON" -m pytest tests -q -x ${WORKERS[@]+"${WORKERS[@]}"} --deselect tests/test_cuda.py -k "not Emulated"
step "sanitizer memcheck" sanitize memcheck
step "sanitizer racecheck" sanitize racecheck
step "sanitizer synccheck" sanitize synccheck
step "benchmark" benchmark

echo
echo "===== summary ====="
printf '%-28s %-6s %9s\n' step result time
for line in "${STEPS[@]}"; do
  echo "$line"
done
exit "$STATUS"
