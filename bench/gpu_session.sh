#!/usr/bin/env bash
# Everything a session with a lent GPU runs, in one command of at most ten minutes, from the
# repository root, with the wheels of bench/gpu_wheels.py carried along in .whl/ and, for the
# side-by-side benchmark, a copy of DiffBMP's published code in .peer_build/src (an ignored
# folder, never committed; a build of it made elsewhere may come along in .peer_build/build, and
# is built again there when it does not load):
#
#     bash bench/gpu_session.sh
#
# Steps, in the order of what a run must learn (each with its own time limit, capped by what is
# left of one overall budget; a step that cannot run says why):
#   environment   the GPU, driver, nvcc, torch, CUDA_HOME (found even where nvcc is a wrapper)
#   wheels        .whl/ installed into a folder of its own, first on PYTHONPATH; import diffbmp
#   build         the cpu and cuda extensions and DiffBMP's modules, compiled in parallel
#   probe         bench/cuda_probe.py: parity, binning stress, determinism (launches synchronised)
#   checks        in parallel: tests/test_cuda.py, compute-sanitizer memcheck on diffbmp's own
#                 kernels, and the fit/video/CLI tests with fits on the GPU
#   versus        bench/bench_vs_diffbmp.py: ours against DiffBMP's FP32 and FP16 kernels
#   benchmark     kernel timings (cuda_probe.py --checks timing) and bench/bench_composite.py --quick
#   fit timing    bench/fit_quality.py: the circles recipe at 256 and 1024 pixels on the GPU
#   cpu fit       the 256-pixel circles fit on the cpu backend, for the fit timing's comparison
#   racecheck, synccheck: only while time is left
#
# Correctness comes first: timings of kernels that fail their checks are not worth the minutes.
# The timed steps run alone on the GPU, after the checks, which run together. $OUT/summary.txt is
# rewritten after every step, so a run cut short still returns it; all output goes to
# $OUT/gpu_session.log, the probe's lines to $OUT/probe.jsonl, the side-by-side rows to
# $OUT/versus.jsonl. The summary, the failed checks and tests, and the tables are printed last.
#
# Environment: BUDGET (seconds, default 540), STEPS (the steps to run, by name, comma-separated:
# a later run repeats only what changed, e.g. STEPS="environment,wheels,build,fit tests"; default
# all), PYTHON (default python3), OUT (default out/gpu_session), PYTEST_WORKERS (default 8),
# SANITIZER (default compute-sanitizer), CHECKS_LIMIT (seconds for the parallel checks, default 150), TEST_TIMEOUT (seconds one test may take, default 200), DIFFBMP_CACHE_DIR (default a fresh folder, so the build
# is timed from scratch), SITE (where the wheels go; default a fresh folder).
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUDGET=${BUDGET:-540}
START=$(date +%s)
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-all}
OUT=${OUT:-$ROOT/out/gpu_session}
SITE=${SITE:-$(mktemp -d /tmp/diffbmp-site.XXXXXX)}
SANITIZER=${SANITIZER:-compute-sanitizer}
mkdir -p "$OUT"
LOG=$OUT/gpu_session.log
SUMMARY=$OUT/summary.txt
PROBE=$OUT/probe.jsonl
: >"$LOG"
: >"$PROBE"
export DIFFBMP_CACHE_DIR=${DIFFBMP_CACHE_DIR:-$(mktemp -d /tmp/diffbmp-cache.XXXXXX)}
export PYTHONUNBUFFERED=1 PYTEST_ADDOPTS="-p no:cacheprovider" PYTHONPATH="$SITE:$ROOT:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
export ROOT PYTHON SANITIZER PROBE SITE OUT

ROWS=()
FIRST_FAILURE=0
NO_GPU=""        # why the steps that need the GPU cannot run ("" while they can)
NO_CUDA_BUILD=""  # why the steps that need the cuda extension cannot run

elapsed() { echo $(($(date +%s) - START)); }

write_summary() {
  {
    printf '%-12s %-8s %7s  %s\n' step result seconds note
    printf '%s\n' "${ROWS[@]}"
    printf 'total %ss of a %ss budget\n' "$(elapsed)" "$BUDGET"
  } >"$SUMMARY"
}

record() {  # record NAME RESULT SECONDS NOTE
  ROWS+=("$(printf '%-12s %-8s %7s  %s' "$1" "$2" "$3" "$4")")
  write_summary
}

# step NAME LIMIT SKIP_REASON FUNCTION: runs FUNCTION (exported) within LIMIT seconds, capped by
# the budget left, unless SKIP_REASON is non-empty; its output goes to the log.
LAST_RC=0
selected() {  # whether step NAME is in STEPS (a comma-separated list of names; "all" by default)
  [ "$STEPS" = all ] || [[ ",$STEPS," == *",$1,"* ]]
}

step() {
  local name=$1 limit=$2 reason=$3 fn=$4
  if ! selected "$name"; then
    LAST_RC=0
    record "$name" skipped 0 "not in STEPS"
    return
  fi
  LAST_RC=1
  if [ -n "$reason" ]; then
    record "$name" skipped 0 "$reason"
    return
  fi
  local left=$((BUDGET - $(elapsed)))
  if [ "$left" -lt 10 ]; then
    record "$name" skipped 0 "no time left of the ${BUDGET}s budget"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  printf '\n===== %s (limit %ss, %ss into the budget) =====\n' "$name" "$limit" "$(elapsed)" | tee -a "$LOG"
  local lines t0=$SECONDS
  lines=$(wc -l <"$LOG")
  timeout --kill-after=10 "$limit" bash -c "$fn" >>"$LOG" 2>&1
  LAST_RC=$?
  local seconds=$((SECONDS - t0))
  case $LAST_RC in
    0) record "$name" ok "$seconds" "" ;;
    124 | 137) record "$name" TIMEOUT "$seconds" "stopped at its ${limit}s limit" ;;
    *) record "$name" FAILED "$seconds" "exit $LAST_RC" ;;
  esac
  [ "$LAST_RC" -ne 0 ] && [ "$FIRST_FAILURE" -eq 0 ] && FIRST_FAILURE=$LAST_RC
  tail -n +$((lines + 1)) "$LOG" | tail -n 4
}

# -- the steps ------------------------------------------------------------------------------

# CUDA_HOME: the toolkit nvcc really runs from. Where nvcc is a wrapper script (as on the
# development machines), torch would take the wrapper's folder and miss the headers.
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
  top=$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
  [ -n "$top" ] && [ -f "$top/include/cuda_runtime_api.h" ] && export CUDA_HOME=$(cd "$top" && pwd -P)
fi

environment() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || echo "nvidia-smi: no GPU"
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  echo "CUDA_HOME=${CUDA_HOME:-unset}"
  g++ --version | head -n 1
  command -v "$SANITIZER" >/dev/null && echo "sanitizer: $("$SANITIZER" --version | tail -n 1)" || echo "sanitizer: $SANITIZER not found"
  "$PYTHON" -c "
import sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda)
print('gpu', torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0) if torch.cuda.is_available() else '') if torch.cuda.is_available() else print('gpu: torch sees none')
try:
    import xdist; print('pytest-xdist', xdist.__version__)
except ImportError:
    print('pytest-xdist: not installed')
"
}

wheels() {
  if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$ROOT"/.whl/*.whl || return
    echo "installed into $SITE: $(cd "$ROOT/.whl" && ls *.whl | tr '\n' ' ')"
  else
    echo "no .whl/ folder: run python bench/gpu_wheels.py here and carry .whl"
  fi
  "$PYTHON" -c "import diffbmp; print('diffbmp from', diffbmp.__file__)"
}

build_one() {  # build_one KIND
  "$PYTHON" -c "
import time
from diffbmp._backend import native_module
t = time.perf_counter()
module = native_module('$1')
print('$1 backend built in %.0f s:' % (time.perf_counter() - t), module.__file__)
"
}

PEER_BUILD=$ROOT/.peer_build/build
PEER_SRC=$ROOT/.peer_build/src
export PEER_BUILD PEER_SRC

peer_prepare() {
  "$PYTHON" bench/bench_vs_diffbmp.py --peer-src "$PEER_SRC" --peer-build "$PEER_BUILD" --prepare-only
}

build() {
  build_one cpu >"$OUT/build_cpu.txt" 2>&1 &
  local cpu=$!
  local peer=""
  if [ -z "${SKIP_CUDA_BUILD:-}" ] && [ -d "$PEER_SRC" ]; then
    peer_prepare >"$OUT/build_peer.txt" 2>&1 &
    peer=$!
  fi
  local cuda_rc=0
  if [ -n "${SKIP_CUDA_BUILD:-}" ]; then
    echo "cuda backend not built: $SKIP_CUDA_BUILD"
  else
    build_one cuda >"$OUT/build_cuda.txt" 2>&1
    cuda_rc=$?
    tail -n 60 "$OUT/build_cuda.txt"
  fi
  wait $cpu
  local cpu_rc=$?
  tail -n 20 "$OUT/build_cpu.txt"
  if [ -n "$peer" ]; then
    wait $peer || echo "DiffBMP's modules: not usable here (the versus step will say why)"
    tail -n 20 "$OUT/build_peer.txt"
  fi
  rm -f "$OUT/build_cpu.txt" "$OUT/build_cuda.txt" "$OUT/build_peer.txt"
  [ $cuda_rc -eq 0 ] && [ $cpu_rc -eq 0 ]
}

probe() {
  CUDA_LAUNCH_BLOCKING=1 DIFFBMP_CUDA_SYNC=1 "$PYTHON" bench/cuda_probe.py --checks parity,binning,determinism \
    --binning-seconds 25 --jsonl "$PROBE"
}

workers() {  # -n N where pytest-xdist is installed
  "$PYTHON" -c "import xdist" 2>/dev/null && echo "-n $1"
}

test_timeout() {  # a stack trace of any test still running after TEST_TIMEOUT seconds (pytest-timeout)
  "$PYTHON" -c "import pytest_timeout" 2>/dev/null && echo "--timeout=${TEST_TIMEOUT:-200}"
}

cuda_tests() {
  CUDA_LAUNCH_BLOCKING=1 "$PYTHON" -m pytest tests/test_cuda.py -v -rfE --durations=15 $(test_timeout) $(workers 6)
}

sanitize() {  # sanitize TOOL: diffbmp's own kernels only (the others run uninstrumented)
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$1" --kernel-name kns=diffbmp --error-exitcode 3 \
    "$PYTHON" bench/cuda_sanitize_scene.py
}
memcheck() { sanitize memcheck; }
racecheck() { sanitize racecheck; }
synccheck() { sanitize synccheck; }

benchmark() {
  "$PYTHON" bench/cuda_probe.py --checks timing --jsonl "$PROBE" || return
  "$PYTHON" bench/bench_composite.py --device cuda --quick
}

versus() {
  "$PYTHON" bench/bench_vs_diffbmp.py --peer-src "$PEER_SRC" --peer-build "$PEER_BUILD" --warmup 5 --repeats 30 --profile \
    --jsonl "$OUT/versus.jsonl"
}

fit_timing() {  # the circles recipe (2048 circles, 4096 steps) at 256 and 1024 pixels, on the GPU
  local size
  for size in 256 1024; do
    "$PYTHON" bench/fit_quality.py --images astronaut --kinds circle --counts 2048 --steps 4096 --size $size \
      --set backend=cuda --set device=cuda || return
  done
}

cpu_fit() {  # the same 256-pixel fit on the cpu backend of this machine, alone, for the comparison
  CUDA_VISIBLE_DEVICES= "$PYTHON" bench/fit_quality.py --images astronaut --kinds circle --counts 2048 --steps 4096 \
    --size 256 --set backend=cpu --set device=cpu
}

fit_tests() {
  "$PYTHON" -m pytest tests/test_fit.py tests/test_video.py tests/test_cli_fit.py -v -rfE --durations=15 $(test_timeout) $(workers "${PYTEST_WORKERS:-8}")
}

export -f environment wheels build_one peer_prepare build probe workers test_timeout cuda_tests sanitize memcheck racecheck \
  synccheck benchmark versus fit_timing cpu_fit fit_tests

# parallel_steps LIMIT NAME FUNCTION SKIP_REASON [NAME FUNCTION SKIP_REASON]...: the steps run at
# once, each within LIMIT seconds (capped by the budget left), each logging to its own file,
# appended to the log in turn when all have ended.
parallel_steps() {
  local limit=$1
  shift
  local left=$((BUDGET - $(elapsed)))
  [ "$limit" -gt "$left" ] && limit=$left
  local names=() pids=() files=() starts=()
  printf '\n===== in parallel (limit %ss, %ss into the budget) =====\n' "$limit" "$(elapsed)" | tee -a "$LOG"
  while [ $# -ge 3 ]; do
    local name=$1 fn=$2 reason=$3
    shift 3
    if ! selected "$name"; then
      record "$name" skipped 0 "not in STEPS"
      continue
    fi
    if [ -n "$reason" ]; then
      record "$name" skipped 0 "$reason"
      continue
    fi
    if [ "$limit" -lt 10 ]; then
      record "$name" skipped 0 "no time left of the ${BUDGET}s budget"
      continue
    fi
    local file
    file=$(mktemp /tmp/diffbmp-step.XXXXXX)
    timeout --kill-after=10 "$limit" bash -c "$fn" >"$file" 2>&1 &
    names+=("$name"); pids+=($!); files+=("$file"); starts+=($SECONDS)
  done
  local i rc
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    rc=$?
    local seconds=$((SECONDS - starts[i]))
    { printf '\n===== %s =====\n' "${names[$i]}"; cat "${files[$i]}"; } >>"$LOG"
    case $rc in
      0) record "${names[$i]}" ok "$seconds" "" ;;
      124 | 137) record "${names[$i]}" TIMEOUT "$seconds" "stopped at its ${limit}s limit" ;;
      *) record "${names[$i]}" FAILED "$seconds" "exit $rc" ;;
    esac
    [ "$rc" -ne 0 ] && [ "$FIRST_FAILURE" -eq 0 ] && FIRST_FAILURE=$rc
    tail -n 3 "${files[$i]}"
    rm -f "${files[$i]}"
  done
}

# -- the run --------------------------------------------------------------------------------

step environment 30 "" environment
step wheels 90 "" wheels
[ "$LAST_RC" -ne 0 ] && NO_GPU="import diffbmp failed (wheels step)" && NO_CUDA_BUILD=$NO_GPU
if [ -z "$NO_GPU" ]; then
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    NO_GPU="no CUDA device: torch.cuda.is_available() is False"
  fi
fi
[ -z "$NO_CUDA_BUILD" ] && NO_CUDA_BUILD=$NO_GPU
export SKIP_CUDA_BUILD=$NO_CUDA_BUILD
step build 300 "" build
if [ "$LAST_RC" -ne 0 ] && [ -z "$NO_CUDA_BUILD" ]; then
  NO_CUDA_BUILD="the build failed"
fi
step probe 100 "$NO_CUDA_BUILD" probe
if ! command -v "$SANITIZER" >/dev/null; then SANITIZER_MISSING="$SANITIZER not found"; else SANITIZER_MISSING=""; fi
parallel_steps "${CHECKS_LIMIT:-150}" "cuda tests" cuda_tests "$NO_CUDA_BUILD" \
  memcheck memcheck "${NO_CUDA_BUILD:-$SANITIZER_MISSING}" \
  "fit tests" fit_tests "$NO_CUDA_BUILD"
step versus 150 "$NO_CUDA_BUILD" versus
step benchmark 90 "$NO_CUDA_BUILD" benchmark
step "fit timing" 120 "$NO_CUDA_BUILD" fit_timing
step "cpu fit" 120 "$NO_GPU" cpu_fit
step racecheck 90 "${NO_CUDA_BUILD:-$SANITIZER_MISSING}" racecheck
step synccheck 60 "${NO_CUDA_BUILD:-$SANITIZER_MISSING}" synccheck

# -- what is printed last (the device tool returns the end of the output) ---------------------

grep -E '^(FAILED|ERROR) |ERROR SUMMARY|^E +[A-Za-z]*Error' "$LOG" | head -n 40 >"$OUT/failures.txt"
echo
echo "===== probe: failed checks and timings ====="
grep -v '"ok": true' "$PROBE" | head -n 30
grep '"check": "timing"\|"check": "backward_run_to_run"\|"check": "binning"' "$PROBE"
echo
echo "===== failures (first 40) ====="
cat "$OUT/failures.txt"
echo
echo "===== fits (seconds to the final PSNR) ====="
grep -E '^\| astronaut' "$LOG" | head -n 6
echo
echo "===== versus DiffBMP ====="
sed -n '/^| scene | renderer/,/^$/p' "$LOG" | head -n 16
grep '^FAILED:' "$LOG" | head -n 10
echo
echo "===== benchmark ====="
sed -n '/^| scene | forward/,/^$/p' "$LOG" | head -n 8
sed -n '/^| primitives/,/^$/p' "$LOG" | head -n 8
echo
echo "===== summary ====="
cat "$SUMMARY"
exit "$FIRST_FAILURE"
